//! Sound: where it comes from (`--audio auto|none|DEVICE|PIPELINE`) and how it is encoded
//! (Opus, 48 kHz) and measured (`level`) on its way to the `audio` appsink.

/// Opus bitrate in kbit/s: clear speech and crowd noise in mono.
pub const DEFAULT_AUDIO_BITRATE_KBPS: u32 = 48;

/// Payload type the pipeline's Opus packets carry; viewers get their own.
pub const OPUS_PIPELINE_PT: u8 = 111;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSettings {
    /// `auto`, `none`, an ALSA device (`hw:1`, `plughw:CARD=Mic`), or a gst-launch source.
    pub source: String,
    pub bitrate_kbps: u32,
    /// 1 (mono) or 2 (stereo).
    pub channels: u8,
    /// Opus in-band forward error correction: survives a lost packet at a small cost.
    pub fec: bool,
    /// Discontinuous transmission: near-silence sends almost nothing.
    pub dtx: bool,
}

impl Default for AudioSettings {
    fn default() -> Self {
        Self {
            source: "auto".to_owned(),
            bitrate_kbps: DEFAULT_AUDIO_BITRATE_KBPS,
            channels: 1,
            fec: true,
            dtx: false,
        }
    }
}

/// What `--audio` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioSource {
    Off,
    /// The preset's own source (a microphone if one is found, the test tone for `test`).
    Auto,
    /// A gst-launch source fragment to use instead.
    Fragment(String),
}

impl AudioSettings {
    pub fn source(&self) -> AudioSource {
        let source = self.source.trim();
        match source {
            "none" | "off" | "" => AudioSource::Off,
            "auto" => AudioSource::Auto,
            s if s.contains('!') || s.contains(char::is_whitespace) || s.contains('=') => {
                AudioSource::Fragment(s.to_owned())
            }
            device => AudioSource::Fragment(format!("alsasrc device=\"{device}\"")),
        }
    }

    /// Checks the values a user can get wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(6..=510).contains(&self.bitrate_kbps) {
            return Err(format!(
                "audio bitrate {} kbit/s: must be 6..=510",
                self.bitrate_kbps
            ));
        }
        if !(1..=2).contains(&self.channels) {
            return Err(format!("audio channels {}: must be 1 or 2", self.channels));
        }
        Ok(())
    }

    /// From raw audio to RTP in the `audio` appsink, with a level meter on the way.
    pub fn tail(&self) -> String {
        format!(
            "audioconvert ! audioresample ! audio/x-raw,rate=48000,channels={channels} \
             ! level name=level interval=100000000 \
             ! opusenc bitrate={bps} frame-size=20 inband-fec={fec} packet-loss-percentage={loss} \
               dtx={dtx} \
             ! rtpopuspay pt={OPUS_PIPELINE_PT} ! appsink name=audio",
            channels = self.channels,
            bps = self.bitrate_kbps * 1000,
            fec = self.fec,
            loss = if self.fec { 5 } else { 0 },
            dtx = self.dtx,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_source(source: &str) -> AudioSettings {
        AudioSettings {
            source: source.to_owned(),
            ..AudioSettings::default()
        }
    }

    #[test]
    fn sources_are_told_apart() {
        assert_eq!(with_source("none").source(), AudioSource::Off);
        assert_eq!(with_source("auto").source(), AudioSource::Auto);
        assert_eq!(
            with_source("hw:1").source(),
            AudioSource::Fragment("alsasrc device=\"hw:1\"".into())
        );
        assert_eq!(
            with_source("pulsesrc device=mic").source(),
            AudioSource::Fragment("pulsesrc device=mic".into())
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let mut settings = AudioSettings::default();
        assert!(settings.validate().is_ok());
        settings.bitrate_kbps = 1000;
        assert!(settings.validate().unwrap_err().contains("6..=510"));
        settings.bitrate_kbps = 48;
        settings.channels = 6;
        assert!(settings.validate().is_err());
    }

    #[test]
    fn tail_encodes_opus_into_the_audio_appsink() {
        let tail = AudioSettings::default().tail();
        assert!(tail.contains("bitrate=48000") && tail.contains("inband-fec=true"));
        assert!(tail.ends_with("appsink name=audio"));
    }
}
