//! Which Debian / Raspberry Pi OS package brings a GStreamer element, so that "no element
//! X" can say what to install.

/// Elements fieldcast's presets and documentation use, with the package that has them.
const PACKAGES: &[(&str, &str)] = &[
    ("alsasrc", "gstreamer1.0-alsa"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("audioconvert", "gstreamer1.0-plugins-base"),
    ("audioresample", "gstreamer1.0-plugins-base"),
    ("audiotestsrc", "gstreamer1.0-plugins-base"),
    ("avdec_h264", "gstreamer1.0-libav"),
    ("clockoverlay", "gstreamer1.0-x"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("level", "gstreamer1.0-plugins-good"),
    ("libcamerasrc", "gstreamer1.0-libcamera"),
    ("openh264enc", "gstreamer1.0-plugins-bad"),
    ("opusenc", "gstreamer1.0-plugins-base"),
    ("pulsesrc", "gstreamer1.0-pulseaudio"),
    ("rtph264depay", "gstreamer1.0-plugins-good"),
    ("rtph264pay", "gstreamer1.0-plugins-good"),
    ("rtpopuspay", "gstreamer1.0-plugins-good"),
    ("textoverlay", "gstreamer1.0-x"),
    ("udpsrc", "gstreamer1.0-plugins-good"),
    ("v4l2h264enc", "gstreamer1.0-plugins-good"),
    ("v4l2src", "gstreamer1.0-plugins-good"),
    ("vaapih264enc", "gstreamer1.0-vaapi"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("videotestsrc", "gstreamer1.0-plugins-base"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
];

/// For GStreamer's parse error `no element "NAME"`: the package to install, if known.
pub fn install_hint(parse_error: &str) -> Option<String> {
    let name = parse_error
        .strip_prefix("no element \"")?
        .split('"')
        .next()?;
    let (_, package) = PACKAGES.iter().find(|(element, _)| *element == name)?;
    Some(format!("{name} comes with the package {package}"))
}

/// GStreamer's parse error, with the package to install when an element is missing.
pub fn explain(parse_error: String) -> String {
    match install_hint(&parse_error) {
        Some(hint) => format!("{parse_error} ({hint})"),
        None => parse_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_element_names_its_package() {
        assert_eq!(
            explain("no element \"clockoverlay\"".to_owned()),
            "no element \"clockoverlay\" (clockoverlay comes with the package gstreamer1.0-x)"
        );
        assert_eq!(
            install_hint("no element \"x264enc\"").as_deref(),
            Some("x264enc comes with the package gstreamer1.0-plugins-ugly")
        );
    }

    #[test]
    fn other_errors_pass_unchanged() {
        for message in [
            "no element \"madeupsrc\"",
            "syntax error",
            "could not link videotestsrc0 to appsink0",
            "no element \"",
        ] {
            assert_eq!(explain(message.to_owned()), message);
        }
    }

    #[test]
    fn the_table_is_sorted_and_has_no_repeats() {
        assert!(PACKAGES.windows(2).all(|pair| pair[0].0 < pair[1].0));
    }
}
