//! Checks a viewer's SDP offer before any WebRTC state is built for it, so a bad offer gets a
//! precise 400 and costs nothing. Pure.

use rtc::sdp::description::media::MediaDescription;
use rtc::sdp::description::session::SessionDescription;
use std::io::Cursor;

/// More m-lines than any real viewer sends (a browser sends one per track).
pub const MAX_MEDIA_SECTIONS: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OfferError {
    #[error("the offer is empty")]
    Empty,
    #[error("the offer is not valid SDP: {0}")]
    Unparsable(String),
    #[error("the offer has {0} media sections; at most {MAX_MEDIA_SECTIONS} are accepted")]
    TooManyMedia(usize),
    #[error("the offer has no video media section")]
    NoVideo,
    #[error("the offer asks for sound only, and this stream has no sound")]
    NoSound,
    #[error("the offer's {0} section is {1}; it must be able to receive (recvonly or sendrecv)")]
    CannotReceive(&'static str, &'static str),
    #[error(
        "the offer's video section does not offer H.264 with packetization-mode=1 (offered: {0})"
    )]
    NoH264(String),
}

/// What the offer asks for, as far as fieldcast cares.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferSummary {
    /// H.264 packetization-mode=1 payload types the viewer offered, in its order of preference;
    /// empty when the offer has no video section (sound only).
    pub h264_payload_types: Vec<u8>,
    /// The viewer will receive Opus, and the stream has sound to send.
    pub audio: bool,
}

impl OfferSummary {
    pub fn video(&self) -> bool {
        !self.h264_payload_types.is_empty()
    }
}

/// Checks an offer against what fieldcast can answer: H.264 video, and Opus sound when
/// `have_sound`. A video section must be answerable; sound is added when offered.
pub fn check_offer(sdp: &str, have_sound: bool) -> Result<OfferSummary, OfferError> {
    if sdp.trim().is_empty() {
        return Err(OfferError::Empty);
    }
    let parsed = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .map_err(|e| OfferError::Unparsable(e.to_string()))?;
    let media = &parsed.media_descriptions;
    if media.len() > MAX_MEDIA_SECTIONS {
        return Err(OfferError::TooManyMedia(media.len()));
    }
    let section = |kind: &str| {
        media
            .iter()
            .find(|m| m.media_name.media == kind && m.media_name.port.value != 0)
    };
    let audio = section("audio")
        .filter(|m| have_sound && cannot_receive(m).is_none() && offers_opus(m))
        .is_some();
    let Some(video) = section("video") else {
        return match (section("audio"), audio) {
            (Some(_), true) => Ok(OfferSummary {
                h264_payload_types: Vec::new(),
                audio,
            }),
            (Some(sound), false) if have_sound => match cannot_receive(sound) {
                Some(direction) => Err(OfferError::CannotReceive("audio", direction)),
                None => Err(OfferError::NoVideo),
            },
            (Some(_), false) => Err(OfferError::NoSound),
            (None, _) => Err(OfferError::NoVideo),
        };
    };
    if let Some(direction) = cannot_receive(video) {
        return Err(OfferError::CannotReceive("video", direction));
    }
    let h264_payload_types = h264_payload_types(video);
    if h264_payload_types.is_empty() {
        return Err(OfferError::NoH264(offered_codecs(video)));
    }
    Ok(OfferSummary {
        h264_payload_types,
        audio,
    })
}

/// The direction that keeps a section from receiving, if any.
fn cannot_receive(media: &MediaDescription) -> Option<&'static str> {
    ["sendonly", "inactive"]
        .into_iter()
        .find(|d| media.has_attribute(d))
}

fn offers_opus(media: &MediaDescription) -> bool {
    rtpmaps(media).any(|(_, codec)| codec.eq_ignore_ascii_case("opus"))
}

/// `a=rtpmap:<pt> <name>/<rate>` entries of a section, as (payload type, codec name).
fn rtpmaps(media: &MediaDescription) -> impl Iterator<Item = (u8, &str)> {
    media
        .attributes
        .iter()
        .filter(|a| a.key == "rtpmap")
        .filter_map(|a| {
            let (pt, codec) = a.value.as_deref()?.split_once(' ')?;
            Some((pt.trim().parse().ok()?, codec.split('/').next()?.trim()))
        })
}

fn fmtp(media: &MediaDescription, payload_type: u8) -> Option<&str> {
    media
        .attributes
        .iter()
        .filter(|a| a.key == "fmtp")
        .filter_map(|a| a.value.as_deref()?.split_once(' '))
        .find(|(pt, _)| pt.trim().parse() == Ok(payload_type))
        .map(|(_, params)| params)
}

fn h264_payload_types(media: &MediaDescription) -> Vec<u8> {
    rtpmaps(media)
        .filter(|(_, codec)| codec.eq_ignore_ascii_case("H264"))
        .filter(|&(pt, _)| {
            fmtp(media, pt).is_some_and(|params| {
                params
                    .split(';')
                    .any(|p| p.trim().eq_ignore_ascii_case("packetization-mode=1"))
            })
        })
        .map(|(pt, _)| pt)
        .collect()
}

fn offered_codecs(media: &MediaDescription) -> String {
    let mut names: Vec<&str> = rtpmaps(media).map(|(_, codec)| codec).collect();
    names.dedup();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(video: &str) -> String {
        format!("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n{video}")
    }

    const CHROME_LIKE_VIDEO: &str = "m=video 9 UDP/TLS/RTP/SAVPF 96 102 103\r\n\
        c=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtpmap:103 H264/90000\r\n\
        a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n";

    #[test]
    fn browser_recvonly_offer_is_accepted() {
        let summary = check_offer(&offer(CHROME_LIKE_VIDEO), true).unwrap();
        assert_eq!(summary.h264_payload_types, vec![102]);
        assert!(!summary.audio);
    }

    #[test]
    fn garbage_is_unparsable() {
        assert!(matches!(
            check_offer("hello, world", true),
            Err(OfferError::Unparsable(_))
        ));
        assert_eq!(check_offer("  \r\n", true), Err(OfferError::Empty));
    }

    const OPUS_AUDIO: &str =
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn audio_only_offer_is_answered_only_with_sound() {
        let audio = OPUS_AUDIO.replace("mid:1", "mid:0");
        let summary = check_offer(&offer(&audio), true).unwrap();
        assert!(summary.audio && !summary.video());
        assert_eq!(check_offer(&offer(&audio), false), Err(OfferError::NoSound));
        let sendonly = audio.replace("recvonly", "sendonly");
        assert_eq!(
            check_offer(&offer(&sendonly), true),
            Err(OfferError::CannotReceive("audio", "sendonly"))
        );
    }

    #[test]
    fn audio_beside_video_is_answered_when_there_is_sound() {
        let both = format!("{CHROME_LIKE_VIDEO}{OPUS_AUDIO}");
        assert!(check_offer(&offer(&both), true).unwrap().audio);
        let summary = check_offer(&offer(&both), false).unwrap();
        assert!(
            summary.video() && !summary.audio,
            "video only without sound"
        );
        let no_opus = both.replace("opus/48000/2", "PCMU/8000");
        assert!(!check_offer(&offer(&no_opus), true).unwrap().audio);
    }

    #[test]
    fn vp8_only_offer_names_what_it_offered() {
        let vp8 = "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n";
        assert_eq!(
            check_offer(&offer(vp8), true),
            Err(OfferError::NoH264("VP8, rtx".to_owned()))
        );
    }

    #[test]
    fn sendonly_video_cannot_receive() {
        let video = CHROME_LIKE_VIDEO.replace("recvonly", "sendonly");
        assert_eq!(
            check_offer(&offer(&video), true),
            Err(OfferError::CannotReceive("video", "sendonly"))
        );
    }

    #[test]
    fn too_many_sections_are_refused() {
        let many = CHROME_LIKE_VIDEO.repeat(MAX_MEDIA_SECTIONS + 1);
        assert_eq!(
            check_offer(&offer(&many), true),
            Err(OfferError::TooManyMedia(MAX_MEDIA_SECTIONS + 1))
        );
    }
}
