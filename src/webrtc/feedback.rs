//! What a viewer's RTCP asks of us, read without IO: a keyframe (PLI or FIR), packets again
//! (NACK; the NACK responder resends them, this only counts), and the loss and jitter it
//! reports.

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Feedback {
    /// The viewer lost its picture and needs a keyframe.
    pub wants_keyframe: bool,
    /// Packets the viewer asks for again.
    pub nacked_packets: u64,
    /// Loss fraction (0..=255 of 256) and jitter (RTP units) of the latest report.
    pub report: Option<(u8, u32)>,
}

pub fn read(packets: &[Box<dyn rtc::rtcp::Packet>]) -> Feedback {
    let mut feedback = Feedback::default();
    for packet in packets {
        let any = packet.as_any();
        if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
            feedback.wants_keyframe = true;
        } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
            // Each pair names one packet and up to 16 after it in a bitmap.
            feedback.nacked_packets += nack
                .nacks
                .iter()
                .map(|pair| 1 + u64::from(pair.lost_packets.count_ones()))
                .sum::<u64>();
        } else if let Some(report) = any.downcast_ref::<ReceiverReport>()
            && let Some(block) = report.reports.first()
        {
            feedback.report = Some((block.fraction_lost, block.jitter));
        }
    }
    feedback
}

/// Parses a compound RTCP packet as it comes off the wire, then reads it.
pub fn read_bytes(mut raw: &[u8]) -> Result<Feedback, String> {
    let packets = rtc::rtcp::packet::unmarshal(&mut raw).map_err(|e| e.to_string())?;
    Ok(read(&packets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::reception_report::ReceptionReport;
    use rtc::shared::marshal::Marshal;

    #[test]
    fn pli_asks_for_a_keyframe_and_rr_reports_loss() {
        let pli = PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 2,
        };
        let rr = ReceiverReport {
            ssrc: 1,
            reports: vec![ReceptionReport {
                ssrc: 2,
                fraction_lost: 64,
                jitter: 900,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut raw = rr.marshal().unwrap().to_vec();
        raw.extend_from_slice(&pli.marshal().unwrap());
        let feedback = read_bytes(&raw).unwrap();
        assert!(feedback.wants_keyframe);
        assert_eq!(feedback.report, Some((64, 900)));
    }

    #[test]
    fn nack_counts_every_packet_it_names() {
        use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;
        let nack = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 2,
            nacks: vec![
                NackPair {
                    packet_id: 40,
                    lost_packets: 0b101,
                },
                NackPair {
                    packet_id: 100,
                    lost_packets: 0,
                },
            ],
        };
        let feedback = read_bytes(&nack.marshal().unwrap()).unwrap();
        assert_eq!(feedback.nacked_packets, 4);
        assert!(!feedback.wants_keyframe);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_bytes(&[0x80, 0xc9, 0xff]).is_err());
    }
}
