//! fieldcast: one camera, one H.264 encode, many WebRTC viewers over WHEP.
//!
//! The data path reads top to bottom: [`media`] (GStreamer pipeline, RTP grouping) →
//! [`fanout`] (per-viewer queues) → [`egress`] (one loop sends every viewer its media) →
//! [`http`] (WHEP signalling, viewer page, status); [`webrtc`] holds what connections share.
//! [`daemon`] wires them together.

pub mod check;
pub mod config;
pub mod daemon;
pub mod egress;
pub mod fanout;
pub mod http;
pub mod media;
mod metrics;
pub mod procfs;
mod publish;
mod record;
mod systemd;
pub mod webrtc;
