//! Flash and beep for the `test` pipeline: a box in the picture turns white, and a 1 kHz tone
//! sounds, for the first 100 ms of every second. Both are cut from the same timeline — the
//! video frames' own timestamps — so any offset a viewer sees between them was added on the
//! way, which makes the pair a sound-to-picture sync meter.
//!
//! The video probe also draws the capture stamp ([`super::capture_stamp`]): the wall-clock time
//! the frame passed it, which for the test source is its capture, for glass-to-glass latency.
//!
//! The marks are drawn by pad probes on two `identity` elements a pipeline names
//! `syncmark-video` (raw I420 or similar 8-bit-luma video) and `syncmark-audio` (F32LE mono).

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::capture_stamp;

pub const VIDEO_MARKER: &str = "syncmark-video";
pub const AUDIO_MARKER: &str = "syncmark-audio";

/// How long each flash and beep lasts.
pub const MARK_NS: u64 = 100_000_000;
const SECOND_NS: u64 = 1_000_000_000;
const BEEP_HZ: f64 = 1000.0;
const BEEP_AMPLITUDE: f32 = 0.3;
/// Side of the flashing square, as a fraction of the picture height.
const BOX_FRACTION: u32 = 8;
const LUMA_WHITE: u8 = 235;
const LUMA_BLACK: u8 = 16;

/// The video frame grid, shared by both probes: first timestamp and frame duration.
#[derive(Default)]
struct FrameGrid {
    /// First frame's PTS + 1 (0: not seen yet).
    base_plus_one: AtomicU64,
    duration: AtomicU64,
}

impl FrameGrid {
    fn get(&self) -> Option<(u64, u64)> {
        let base = self.base_plus_one.load(Ordering::Acquire).checked_sub(1)?;
        let duration = self.duration.load(Ordering::Acquire);
        (duration > 0).then_some((base, duration))
    }
}

/// Start of the mark that `t` falls in, if any: the mark of second `N` begins at the first
/// video frame at or after `N` s, so the flash and the beep start on the same instant.
pub fn mark_start(t: u64, base: u64, frame: u64) -> Option<u64> {
    // Seconds before the stream began have no frame near them, and so no mark.
    let first_frame_at_or_after = |n: u64| {
        let start = base + n.max(base).saturating_sub(base).div_ceil(frame) * frame;
        (start < n + frame).then_some(start)
    };
    // The mark of this second, or of the previous one (a frame may land just after N).
    let second = t / SECOND_NS * SECOND_NS;
    [second, second.saturating_sub(SECOND_NS)]
        .into_iter()
        .filter_map(first_frame_at_or_after)
        .find(|&start| start <= t && t < start + MARK_NS)
}

/// Adds the probes if the pipeline has the marker elements; returns whether it did.
pub fn attach(pipeline: &gst::Pipeline) -> bool {
    let (Some(video), Some(audio)) = (
        pipeline.by_name(VIDEO_MARKER),
        pipeline.by_name(AUDIO_MARKER),
    ) else {
        if let Some(video) = pipeline.by_name(VIDEO_MARKER) {
            attach_video(&video, Arc::default());
            return true;
        }
        return false;
    };
    let grid = Arc::new(FrameGrid::default());
    attach_video(&video, Arc::clone(&grid));
    attach_audio(&audio, grid);
    true
}

fn attach_video(marker: &gst::Element, grid: Arc<FrameGrid>) {
    let Some(pad) = marker.static_pad("src") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(caps) = pad.current_caps() else {
            return gst::PadProbeReturn::Ok;
        };
        let Ok(video_info) = gst_video::VideoInfo::from_caps(&caps) else {
            return gst::PadProbeReturn::Ok;
        };
        // Read first: this is the frame's capture time as far as the stamp is concerned.
        let captured_ms = unix_ms_now();
        let Some(buffer) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts().map(|t| t.nseconds()) else {
            return gst::PadProbeReturn::Ok;
        };
        if grid.base_plus_one.load(Ordering::Acquire) == 0 {
            let fps = video_info.fps();
            if fps.numer() > 0 {
                let duration = SECOND_NS * fps.denom() as u64 / fps.numer() as u64;
                grid.duration.store(duration, Ordering::Release);
                grid.base_plus_one.store(pts + 1, Ordering::Release);
            }
        }
        let Some((base, frame)) = grid.get() else {
            return gst::PadProbeReturn::Ok;
        };
        let luma = if mark_start(pts, base, frame).is_some() {
            LUMA_WHITE
        } else {
            LUMA_BLACK
        };
        let buffer = buffer.make_mut();
        if let Ok(mut frame) =
            gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &video_info)
        {
            paint_box(&mut frame, luma);
            paint_capture_stamp(&mut frame, captured_ms);
        }
        gst::PadProbeReturn::Ok
    });
}

/// A square in the bottom-left corner of the luma plane.
fn paint_box(frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>, luma: u8) {
    let height = frame.height();
    let side = (height / BOX_FRACTION).max(8) as usize;
    let stride = frame.plane_stride()[0] as usize;
    let margin = side / 2;
    let Ok(plane) = frame.plane_data_mut(0) else {
        return;
    };
    for row in (height as usize - side - margin)..(height as usize - margin) {
        let start = row * stride + margin;
        if let Some(pixels) = plane.get_mut(start..start + side) {
            pixels.fill(luma);
        }
    }
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The capture stamp along the bottom edge: blocks in luma, grey in planar chroma.
fn paint_capture_stamp(frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>, unix_ms: u64) {
    let (width, height) = (frame.width() as usize, frame.height() as usize);
    let stride = |frame: &gst_video::VideoFrameRef<&mut gst::BufferRef>, plane: usize| {
        frame.plane_stride().get(plane).map_or(0, |&s| s as usize)
    };
    let luma_stride = stride(frame, 0);
    if let Ok(luma) = frame.plane_data_mut(0) {
        capture_stamp::paint_luma(luma, luma_stride, width, height, unix_ms);
    }
    let info = frame.format_info();
    if !(info.is_yuv() && frame.n_planes() == 3) {
        return;
    }
    let shift = (info.w_sub()[1], info.h_sub()[1]);
    for plane in 1..3 {
        let chroma_stride = stride(frame, plane as usize);
        if let Ok(chroma) = frame.plane_data_mut(plane) {
            capture_stamp::paint_chroma(chroma, chroma_stride, (width, height), shift);
        }
    }
}

fn attach_audio(marker: &gst::Element, grid: Arc<FrameGrid>) {
    let Some(pad) = marker.static_pad("src") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let rate = pad
            .current_caps()
            .and_then(|caps| caps.structure(0)?.get::<i32>("rate").ok())
            .unwrap_or(48_000) as u64;
        let (Some((base, frame)), Some(buffer)) = (grid.get(), info.buffer_mut()) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts().map(|t| t.nseconds()) else {
            return gst::PadProbeReturn::Ok;
        };
        let buffer = buffer.make_mut();
        // A silent source marks its buffers as gaps, which downstream would not read.
        buffer.unset_flags(gst::BufferFlags::GAP);
        let Ok(mut map) = buffer.map_writable() else {
            return gst::PadProbeReturn::Ok;
        };
        for (i, sample) in map.chunks_exact_mut(4).enumerate() {
            let t = pts + i as u64 * SECOND_NS / rate;
            let value = match mark_start(t, base, frame) {
                Some(start) => {
                    let since = (t - start) as f64 / SECOND_NS as f64;
                    BEEP_AMPLITUDE * (2.0 * std::f64::consts::PI * BEEP_HZ * since).sin() as f32
                }
                None => 0.0,
            };
            sample.copy_from_slice(&value.to_le_bytes());
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u64 = SECOND_NS / 30;

    #[test]
    fn marks_start_on_the_first_frame_of_each_second() {
        // Frames at 0.31 s + k/30 s; the first at or after 1 s is 0.31 + 21/30 = 1.01 s.
        let base = 310_000_000;
        let start = base + 21 * FRAME;
        assert_eq!(mark_start(start, base, FRAME), Some(start));
        assert_eq!(
            mark_start(start - 1, base, FRAME),
            None,
            "1.0 s itself is before the frame"
        );
        assert_eq!(mark_start(start + MARK_NS - 1, base, FRAME), Some(start));
        assert_eq!(mark_start(start + MARK_NS, base, FRAME), None);
    }

    #[test]
    fn a_mark_that_spills_past_the_second_is_still_found() {
        // Base just before a whole second: the mark of second 1 runs into 1.09 s.
        let base = 990_000_000;
        let start = base + FRAME;
        assert!(start > SECOND_NS);
        assert_eq!(mark_start(start + 5_000_000, base, FRAME), Some(start));
        assert_eq!(mark_start(SECOND_NS + 1, base, FRAME), None);
    }

    #[test]
    fn nothing_before_the_first_frame() {
        assert_eq!(mark_start(100, 5 * SECOND_NS, FRAME), None);
    }
}
