//! The H.264 encoders fieldcast knows, best first, and the settings each needs so that every
//! browser can decode what it makes: no B-frames, an IDR at least every 2 s, constrained
//! baseline profile.

/// Target bitrate for every encoder, in kbit/s: clear 720p30 within a school's Wi-Fi.
pub const DEFAULT_BITRATE_KBPS: u32 = 2000;

/// Frames between IDRs: 2 s at the 30 fps every preset asks of its source.
pub const KEYFRAME_INTERVAL_FRAMES: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoder {
    /// GStreamer element factory name.
    pub element: &'static str,
    /// Runs on dedicated hardware rather than the CPU.
    pub hardware: bool,
    /// gst-launch fragment, with `{kbps}`, `{bps}` and `{gop}` to fill in.
    template: &'static str,
}

/// Autodetect order: the board's own encoder, then other hardware, then software.
pub const ENCODERS: &[Encoder] = &[
    Encoder {
        element: "v4l2h264enc",
        hardware: true,
        // The Pi 4 encoder refuses to negotiate without an explicit level.
        template: "v4l2h264enc extra-controls=\"controls,repeat_sequence_header=1,\
                   h264_i_frame_period={gop},video_bitrate={bps}\" \
                   ! video/x-h264,level=(string)4,profile=(string)constrained-baseline",
    },
    Encoder {
        element: "vaapih264enc",
        hardware: true,
        template: "vaapih264enc rate-control=cbr bitrate={kbps} keyframe-period={gop} \
                   max-bframes=0 ! video/x-h264,profile=(string)constrained-baseline",
    },
    Encoder {
        element: "nvv4l2h264enc",
        hardware: true,
        template: "nvvidconv ! nvv4l2h264enc bitrate={bps} iframeinterval={gop} \
                   idrinterval={gop} insert-sps-pps=true profile=0 \
                   ! video/x-h264,profile=(string)baseline",
    },
    Encoder {
        element: "x264enc",
        hardware: false,
        template: "x264enc tune=zerolatency speed-preset=ultrafast bframes=0 \
                   key-int-max={gop} bitrate={kbps} \
                   ! video/x-h264,profile=(string)constrained-baseline",
    },
    Encoder {
        element: "openh264enc",
        hardware: false,
        template: "openh264enc complexity=low rate-control=bitrate bitrate={bps} \
                   gop-size={gop} ! video/x-h264,profile=(string)constrained-baseline",
    },
];

impl Encoder {
    pub fn by_element(element: &str) -> Option<&'static Encoder> {
        ENCODERS.iter().find(|e| e.element == element)
    }

    /// The gst-launch fragment for this encoder at the given bitrate.
    pub fn fragment(&self, kbps: u32) -> String {
        self.template
            .replace("{kbps}", &kbps.to_string())
            .replace("{bps}", &(u64::from(kbps) * 1000).to_string())
            .replace("{gop}", &KEYFRAME_INTERVAL_FRAMES.to_string())
    }
}

/// The first encoder, in autodetect order, that `usable` accepts.
pub fn pick(usable: impl Fn(&Encoder) -> bool) -> Option<&'static Encoder> {
    ENCODERS.iter().find(|e| usable(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_comes_before_software() {
        let first_software = ENCODERS.iter().position(|e| !e.hardware).unwrap();
        assert!(ENCODERS[first_software..].iter().all(|e| !e.hardware));
        assert_eq!(ENCODERS[0].element, "v4l2h264enc");
        assert_eq!(ENCODERS.last().unwrap().element, "openh264enc");
    }

    #[test]
    fn pick_takes_the_first_usable() {
        let only_software = pick(|e| !e.hardware).unwrap();
        assert_eq!(only_software.element, "x264enc");
        let no_x264 = pick(|e| e.element == "openh264enc").unwrap();
        assert_eq!(no_x264.element, "openh264enc");
        assert!(pick(|_| false).is_none());
    }

    #[test]
    fn fragments_have_no_placeholders_and_no_b_frames() {
        for encoder in ENCODERS {
            let fragment = encoder.fragment(1500);
            assert!(!fragment.contains('{'), "{fragment}");
            assert!(fragment.starts_with(encoder.element) || fragment.contains(encoder.element));
            assert!(fragment.contains("profile=(string)"), "{fragment}");
        }
        let x264 = Encoder::by_element("x264enc").unwrap().fragment(1500);
        assert!(x264.contains("bitrate=1500 ") && x264.contains("bframes=0"));
        let v4l2 = Encoder::by_element("v4l2h264enc").unwrap().fragment(1500);
        assert!(v4l2.contains("video_bitrate=1500000") && v4l2.contains("level=(string)4"));
    }
}
