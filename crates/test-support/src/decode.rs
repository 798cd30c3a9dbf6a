//! Decodes what a test viewer received with GStreamer's own depayloaders and decoders, keeping
//! each packet's arrival time as the decoded buffer's timestamp.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use rtc::shared::marshal::Marshal;
use std::time::{Duration, Instant};

/// Decoded output: (arrival time of its packet relative to `epoch`, payload).
pub type Timed<T> = Vec<(Duration, T)>;

fn run_decoder(
    caps: &str,
    chain: &str,
    packets: &[(rtc::rtp::Packet, Instant)],
    epoch: Instant,
) -> Vec<(Duration, Vec<u8>)> {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps={caps} ! {chain} ! appsink name=out sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for (packet, arrived) in packets {
        let mut buffer = gst::Buffer::from_slice(packet.marshal().unwrap().to_vec());
        let pts = arrived.saturating_duration_since(epoch);
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_nseconds(pts.as_nanos() as u64));
        src.push_buffer(buffer).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut out = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(5)) {
        let buffer = sample.buffer().unwrap();
        let pts = Duration::from_nanos(buffer.pts().map_or(0, |t| t.nseconds()));
        out.push((pts, buffer.map_readable().unwrap().to_vec()));
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

/// Opus RTP → mono f32 samples, one entry per decoded packet.
pub fn opus(
    packets: &[(rtc::rtp::Packet, Instant)],
    payload_type: u8,
    epoch: Instant,
) -> Timed<Vec<f32>> {
    let caps = format!(
        "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload={payload_type}"
    );
    run_decoder(
        &caps,
        "rtpopusdepay ! opusdec ! audioconvert ! audio/x-raw,format=F32LE,channels=1,rate=48000",
        packets,
        epoch,
    )
    .into_iter()
    .map(|(t, bytes)| {
        let samples = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (t, samples)
    })
    .collect()
}

/// Size the decoded pictures are scaled to before they are handed back.
pub const GRAY_WIDTH: usize = 160;
pub const GRAY_HEIGHT: usize = 90;

/// H.264 RTP → each decoded picture as 8-bit luma, scaled to `GRAY_WIDTH` × `GRAY_HEIGHT`.
pub fn h264_gray(
    packets: &[(rtc::rtp::Packet, Instant)],
    payload_type: u8,
    epoch: Instant,
) -> Timed<Vec<u8>> {
    let caps = format!(
        "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload={payload_type}"
    );
    let chain = format!(
        "rtph264depay ! avdec_h264 ! videoconvert ! videoscale \
         ! video/x-raw,format=GRAY8,width={GRAY_WIDTH},height={GRAY_HEIGHT}"
    );
    run_decoder(&caps, &chain, packets, epoch)
}
