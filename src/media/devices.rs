//! Finds the cameras attached to the board, through GStreamer's device monitor.

use gstreamer as gst;
use gstreamer::prelude::*;

/// What a USB camera can send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsbFormats {
    pub mjpeg: bool,
    pub raw: bool,
    pub h264: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Camera {
    /// A camera module on the board's CSI connector, reached through libcamera.
    Csi { name: String },
    /// A V4L2 capture device, usually a USB webcam.
    Usb {
        name: String,
        device: String,
        formats: UsbFormats,
    },
}

/// Every camera GStreamer can see now; empty when there is none.
pub fn detect() -> Vec<Camera> {
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some("Video/Source"), None);
    if monitor.start().is_err() {
        tracing::debug!("no video device provider could start");
        return Vec::new();
    }
    let cameras = monitor.devices().iter().filter_map(describe).collect();
    monitor.stop();
    cameras
}

fn describe(device: &gst::Device) -> Option<Camera> {
    let name = device.display_name().to_string();
    let element = device.create_element(None).ok()?;
    let factory = element.factory()?;
    match factory.name().as_str() {
        "libcamerasrc" => Some(Camera::Csi { name }),
        "v4l2src" => {
            let device_path = device
                .properties()
                .and_then(|p| p.get::<String>("device.path").ok())
                .or_else(|| element.property::<Option<String>>("device"))?;
            let formats = usb_formats(&device.caps()?);
            (formats != UsbFormats::default()).then_some(Camera::Usb {
                name,
                device: device_path,
                formats,
            })
        }
        _ => None,
    }
}

fn usb_formats(caps: &gst::Caps) -> UsbFormats {
    let mut formats = UsbFormats::default();
    for structure in caps.iter() {
        match structure.name().as_str() {
            "image/jpeg" => formats.mjpeg = true,
            "video/x-raw" => formats.raw = true,
            "video/x-h264" => formats.h264 = true,
            // Bayer sensors behind a bare V4L2 node need libcamera; nothing we can use here.
            _ => {}
        }
    }
    formats
}

/// The first microphone GStreamer can see, as a gst-launch source fragment.
pub fn first_microphone() -> Option<String> {
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some("Audio/Source"), None);
    monitor.start().ok()?;
    let found = monitor.devices().iter().find_map(|device| {
        // PulseAudio and PipeWire list what the speakers play as a source too.
        if device.display_name().contains("Monitor of") {
            return None;
        }
        let element = device.create_element(None).ok()?;
        let factory = element.factory()?.name();
        let name = element
            .find_property("device")
            .and_then(|_| element.property::<Option<String>>("device"));
        Some(match name {
            Some(name) => format!("{factory} device=\"{name}\""),
            None => factory.to_string(),
        })
    });
    monitor.stop();
    found
}
