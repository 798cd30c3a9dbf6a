//! The frame counter the feeder puts in front of every frame: an H.264 SEI NAL unit of type
//! user_data_unregistered (ITU-T H.264 D.1.6) that both servers forward untouched, so a
//! viewer can tell which input frame it holds even though fieldcast re-packetises the stream
//! (new sequence numbers, timestamps and SSRC). Pure: no IO, no clock.

/// Marks our SEI among any others the encoder writes (x264 writes its version string).
const UUID: &[u8; 16] = b"fieldcast-bench!";
const NAL_SEI: u8 = 6;
const NAL_STAP_A: u8 = 24;
const SEI_USER_DATA_UNREGISTERED: u8 = 5;
/// The counter in 7-bit groups with the top bit set: never two zero bytes in a row, so no
/// emulation-prevention bytes are needed and no parser can rewrite it.
const COUNTER_BYTES: usize = 8;
const SEI_PAYLOAD_SIZE: u8 = (UUID.len() + COUNTER_BYTES) as u8;

/// The whole NAL unit (header byte included) carrying `counter` (56 bits are kept).
pub fn nal(counter: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + SEI_PAYLOAD_SIZE as usize);
    out.push(NAL_SEI);
    out.push(SEI_USER_DATA_UNREGISTERED);
    out.push(SEI_PAYLOAD_SIZE);
    out.extend_from_slice(UUID);
    for group in (0..COUNTER_BYTES).rev() {
        out.push(0x80 | ((counter >> (7 * group)) & 0x7f) as u8);
    }
    out.push(0x80); // rbsp_stop_one_bit and alignment
    out
}

/// The counter in an RTP payload: a single SEI NAL unit or one inside a STAP-A.
pub fn counter_in_payload(payload: &[u8]) -> Option<u64> {
    match payload.first()? & 0x1f {
        NAL_SEI => counter_in_nal(payload),
        NAL_STAP_A => {
            let mut rest = &payload[1..];
            while rest.len() >= 3 {
                let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                if size == 0 || rest.len() < 2 + size {
                    return None;
                }
                if let Some(counter) = counter_in_nal(&rest[2..2 + size]) {
                    return Some(counter);
                }
                rest = &rest[2 + size..];
            }
            None
        }
        _ => None,
    }
}

fn counter_in_nal(nal: &[u8]) -> Option<u64> {
    let body = nal.get(1..)?;
    if nal[0] & 0x1f != NAL_SEI
        || body.len() < 2 + SEI_PAYLOAD_SIZE as usize
        || body[0] != SEI_USER_DATA_UNREGISTERED
        || body[1] != SEI_PAYLOAD_SIZE
        || &body[2..18] != UUID
    {
        return None;
    }
    let counter = body[18..18 + COUNTER_BYTES]
        .iter()
        .fold(0u64, |acc, byte| (acc << 7) | u64::from(byte & 0x7f));
    Some(counter)
}

/// Checked once at start-up (a bench target runs no `#[test]`s).
pub fn self_check() {
    for counter in [0, 1, 127, 128, 65_535, 1 << 40] {
        let nal = nal(counter);
        assert!(
            !nal.windows(2).any(|w| w == [0, 0]),
            "SEI for {counter} needs emulation prevention"
        );
        assert_eq!(counter_in_payload(&nal), Some(counter));
        let mut stap = vec![NAL_STAP_A, 0, 2, 0x67, 0x42];
        stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        stap.extend_from_slice(&nal);
        assert_eq!(counter_in_payload(&stap), Some(counter));
    }
}
