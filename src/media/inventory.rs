//! `fieldcast devices`: what this board offers — cameras with the formats they send,
//! microphones, and the H.264 encoders GStreamer has — as text for a terminal.

use super::devices;
use super::encoders::ENCODERS;
use super::presets;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::fmt::Write;

/// At most this many formats per camera; webcams list dozens.
const FORMATS_SHOWN: usize = 12;

pub fn report() -> Result<String, String> {
    gst::init().map_err(|e| format!("GStreamer could not start: {e}"))?;
    let mut out = String::new();
    let cameras = list("Video/Source");
    let _ = writeln!(out, "Cameras ({}):", cameras.len());
    if cameras.is_empty() {
        out.push_str("  none found (the `auto` pipeline streams the test pattern)\n");
    }
    for (name, element, formats) in &cameras {
        let _ = writeln!(out, "  {name}  [{element}]");
        for format in formats.iter().take(FORMATS_SHOWN) {
            let _ = writeln!(out, "      {format}");
        }
        if formats.len() > FORMATS_SHOWN {
            let _ = writeln!(out, "      … {} more", formats.len() - FORMATS_SHOWN);
        }
    }
    let microphones = list("Audio/Source");
    let _ = writeln!(out, "Microphones ({}):", microphones.len());
    if microphones.is_empty() {
        out.push_str("  none found (`--audio auto` streams video only)\n");
    }
    for (name, element, _) in &microphones {
        let _ = writeln!(out, "  {name}  [{element}]");
    }
    out.push_str("H.264 encoders, in the order `auto` tries them:\n");
    for encoder in ENCODERS {
        let state = if gst::ElementFactory::find(encoder.element).is_none() {
            "not installed"
        } else if presets::usable(encoder) {
            "usable"
        } else {
            "installed, but does not open here"
        };
        let kind = if encoder.hardware {
            "hardware"
        } else {
            "software"
        };
        let _ = writeln!(out, "  {:<14} {kind:<9} {state}", encoder.element);
    }
    let _ = writeln!(
        out,
        "The `auto` pipeline here: {}",
        match devices::detect().first() {
            Some(_) => "a camera preset (see `fieldcast check`)",
            None => "test",
        }
    );
    Ok(out)
}

/// (display name, gst-launch source, formats) of every device in `class`.
fn list(class: &str) -> Vec<(String, String, Vec<String>)> {
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some(class), None);
    if monitor.start().is_err() {
        return Vec::new();
    }
    let found = monitor
        .devices()
        .iter()
        .map(|device| {
            let element = device
                .create_element(None)
                .ok()
                .and_then(|e| {
                    let factory = e.factory()?.name().to_string();
                    let path = e
                        .find_property("device")
                        .and_then(|_| e.property::<Option<String>>("device"));
                    Some(match path {
                        Some(path) => format!("{factory} device={path}"),
                        None => factory,
                    })
                })
                .unwrap_or_else(|| "?".to_owned());
            let formats = device
                .caps()
                .map(|caps| caps.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default();
            (device.display_name().to_string(), element, formats)
        })
        .collect();
    monitor.stop();
    found
}
