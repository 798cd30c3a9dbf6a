//! `application/trickle-ice-sdpfrag` bodies (RFC 8840) as sent in a WHEP PATCH. Pure.

/// More candidates than one PATCH plausibly carries.
pub const MAX_CANDIDATES_PER_FRAGMENT: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SdpFragError {
    #[error(
        "the fragment carries {0} candidates; at most {MAX_CANDIDATES_PER_FRAGMENT} are accepted"
    )]
    TooManyCandidates(usize),
    #[error("line {line} is not an SDP attribute line: {text:?}")]
    NotAnAttribute { line: usize, text: String },
}

/// One candidate and the media section it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct TrickleCandidate {
    /// The attribute value, `candidate:...`.
    pub candidate: String,
    pub mid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SdpFrag {
    pub ice_ufrag: Option<String>,
    pub ice_pwd: Option<String>,
    pub candidates: Vec<TrickleCandidate>,
    pub end_of_candidates: bool,
}

impl SdpFrag {
    pub fn parse(body: &str) -> Result<SdpFrag, SdpFragError> {
        let mut frag = SdpFrag::default();
        let mut mid: Option<String> = None;
        for (index, raw) in body.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            // Session- and media-level lines other than attributes carry nothing for ICE.
            if let Some(("m" | "c" | "o" | "s" | "t" | "v", _)) = line.split_once('=') {
                continue;
            }
            let Some(attribute) = line.strip_prefix("a=") else {
                return Err(SdpFragError::NotAnAttribute {
                    line: index + 1,
                    text: line.chars().take(80).collect(),
                });
            };
            let (key, value) = attribute.split_once(':').unwrap_or((attribute, ""));
            match key {
                "ice-ufrag" => frag.ice_ufrag = Some(value.to_owned()),
                "ice-pwd" => frag.ice_pwd = Some(value.to_owned()),
                "mid" => mid = Some(value.to_owned()),
                "end-of-candidates" => frag.end_of_candidates = true,
                "candidate" => frag.candidates.push(TrickleCandidate {
                    candidate: attribute.to_owned(),
                    mid: mid.clone(),
                }),
                _ => {}
            }
        }
        if frag.candidates.len() > MAX_CANDIDATES_PER_FRAGMENT {
            return Err(SdpFragError::TooManyCandidates(frag.candidates.len()));
        }
        Ok(frag)
    }
}

/// A browser's host candidate hidden behind an mDNS name (`….local`). fieldcast does not
/// resolve those; the browser's connectivity checks reach us anyway (peer-reflexive).
pub fn is_mdns_candidate(candidate: &str) -> bool {
    candidate
        .split_whitespace()
        .nth(4)
        .is_some_and(|address| address.ends_with(".local"))
}

/// The viewer's previous offer with new ICE credentials, as the offer of an ICE restart:
/// old candidates dropped (new ones come by trickle), session version bumped.
pub fn restart_offer(previous: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(previous.len());
    for line in previous.lines() {
        let line = line.trim_end();
        let replaced = if line.starts_with("a=ice-ufrag:") {
            format!("a=ice-ufrag:{ufrag}")
        } else if line.starts_with("a=ice-pwd:") {
            format!("a=ice-pwd:{pwd}")
        } else if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
            continue;
        } else if let Some(origin) = line.strip_prefix("o=") {
            let mut fields: Vec<&str> = origin.split(' ').collect();
            let bumped = fields
                .get(2)
                .and_then(|v| v.parse::<u64>().ok())
                .map(|v| v.wrapping_add(1).to_string());
            if let Some(bumped) = &bumped {
                fields[2] = bumped;
            }
            format!("o={}", fields.join(" "))
        } else {
            line.to_owned()
        };
        out.push_str(&replaced);
        out.push_str("\r\n");
    }
    out
}

/// What the answer to an ICE restart carries (RFC 9725 §4.4): our new ufrag and pwd, and our
/// candidates under the first media section.
pub fn answer_fragment(local_sdp: &str) -> String {
    let mut credentials = Vec::new();
    let mut media = Vec::new();
    let mut in_first_media = false;
    let mut seen_media = false;
    for line in local_sdp.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            in_first_media = !seen_media;
            seen_media = true;
            if in_first_media {
                media.push(line.to_owned());
            }
            continue;
        }
        if line.starts_with("a=ice-ufrag:") || line.starts_with("a=ice-pwd:") {
            if !credentials
                .iter()
                .any(|l: &String| l.split(':').next() == line.split(':').next())
            {
                credentials.push(line.to_owned());
            }
        } else if in_first_media && (line.starts_with("a=mid:") || line.starts_with("a=candidate:"))
        {
            media.push(line.to_owned());
        }
    }
    media.push("a=end-of-candidates".to_owned());
    let mut out = credentials.join("\r\n");
    out.push_str("\r\n");
    out.push_str(&media.join("\r\n"));
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdns_candidates_are_recognised() {
        assert!(is_mdns_candidate(
            "candidate:1 1 udp 2122260223 4f0c8d2a-9c1e-4b8e.local 54321 typ host"
        ));
        assert!(!is_mdns_candidate(
            "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host"
        ));
    }

    #[test]
    fn restart_offer_swaps_credentials_and_drops_old_candidates() {
        let previous = "v=0\r\no=- 42 7 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                        a=ice-ufrag:old\r\na=ice-pwd:oldpassword\r\na=mid:0\r\n\
                        a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n";
        let offer = restart_offer(previous, "new", "newpasswordnewpassword");
        assert!(offer.contains("o=- 42 8 IN IP4"), "{offer}");
        assert!(
            offer.contains("a=ice-ufrag:new\r\n")
                && offer.contains("a=ice-pwd:newpasswordnewpassword")
        );
        assert!(
            !offer.contains("old") && !offer.contains("a=candidate"),
            "{offer}"
        );
        assert!(offer.contains("a=mid:0"));
    }

    #[test]
    fn answer_fragment_carries_credentials_and_first_section_candidates() {
        let local = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:us\r\na=ice-pwd:ourpassword\r\n\
                     a=mid:0\r\na=candidate:1 1 udp 1 192.0.2.9 6000 typ host\r\n\
                     m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:us\r\na=ice-pwd:ourpassword\r\na=mid:1\r\n\
                     a=candidate:1 1 udp 1 192.0.2.9 6000 typ host\r\n";
        let frag = answer_fragment(local);
        let parsed = SdpFrag::parse(&frag).unwrap();
        assert_eq!(parsed.ice_ufrag.as_deref(), Some("us"));
        assert_eq!(parsed.ice_pwd.as_deref(), Some("ourpassword"));
        assert_eq!(parsed.candidates.len(), 1);
        assert_eq!(parsed.candidates[0].mid.as_deref(), Some("0"));
        assert!(parsed.end_of_candidates);
    }

    #[test]
    fn candidates_keep_their_mid() {
        let frag = SdpFrag::parse(
            "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=video 9 RTP/AVP 0\r\na=mid:0\r\n\
             a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0\r\n\
             a=end-of-candidates\r\n",
        )
        .unwrap();
        assert_eq!(frag.ice_ufrag.as_deref(), Some("EsAw"));
        assert_eq!(frag.candidates.len(), 1);
        assert!(
            frag.candidates[0]
                .candidate
                .starts_with("candidate:1387637174 1 udp")
        );
        assert_eq!(frag.candidates[0].mid.as_deref(), Some("0"));
        assert!(frag.end_of_candidates);
    }

    #[test]
    fn non_sdp_text_is_rejected_with_its_line() {
        assert_eq!(
            SdpFrag::parse("a=mid:0\nhello"),
            Err(SdpFragError::NotAnAttribute {
                line: 2,
                text: "hello".into()
            })
        );
    }

    #[test]
    fn flood_of_candidates_is_refused() {
        let body = "a=candidate:1 1 udp 1 192.0.2.1 1 typ host\n".repeat(65);
        assert_eq!(
            SdpFrag::parse(&body),
            Err(SdpFragError::TooManyCandidates(65))
        );
    }
}
