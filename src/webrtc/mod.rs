//! One receive-only WebRTC PeerConnection per viewer, and the registry that owns them.

pub mod api;
pub mod batched_socket;
pub mod connection;
pub mod feedback;
pub mod frame_batch;
pub mod ice_servers;
pub mod offer;
pub mod outbound;
pub mod ports;
pub mod registry;
pub mod repeat_resends;
pub mod runtime;
pub mod sdpfrag;
pub mod session;
pub mod totals;
pub mod udp_batch;
