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

#[cfg(test)]
mod tests {
    use super::*;

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
