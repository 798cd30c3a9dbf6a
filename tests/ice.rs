//! Trickle ICE and ICE restart over WHEP PATCH (RFC 9725 §4.3–4.4) with a real viewer:
//! the stream survives a restart, and a browser's mDNS candidate does no harm. ICE over TCP
//! on the egress loop: the answer offers a passive TCP candidate beside the UDP one, and a
//! connection that brings no viewer's check is closed, leaving the daemon as it was. And
//! relay-only ICE with no relay to offer: the viewer is told so, not answered with nothing to
//! reach.

use fieldcast_test_support as support;

use fieldcast::webrtc::api::IceServer;
use fieldcast::webrtc::sdpfrag::{SdpFrag, restart_offer};
use rtc::peer_connection::configuration::RTCOfferOptions;
use std::time::Duration;
use support::{
    Wants, WhepViewer, base_url, offer_for, post_offer, start_daemon, start_daemon_with,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webrtc::peer_connection::RTCSessionDescription;

fn attribute<'a>(sdp: &'a str, name: &str) -> &'a str {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {sdp}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_survives_an_ice_restart() {
    let daemon = start_daemon().await;
    let base = base_url(&daemon);
    let mut viewer = WhepViewer::connect(&base).await;
    viewer.next_frame(Duration::from_secs(5)).await;
    let old_answer = viewer.peer.remote_description().await.unwrap().sdp;

    // The viewer restarts ICE: new credentials and candidates go to the session by PATCH.
    let offer = viewer
        .peer
        .create_offer(Some(RTCOfferOptions { ice_restart: true }))
        .await
        .unwrap();
    viewer.peer.set_local_description(offer).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let local = viewer.peer.local_description().await.unwrap().sdp;
    let mut fragment = format!(
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n",
        attribute(&local, "a=ice-ufrag:"),
        attribute(&local, "a=ice-pwd:")
    );
    for line in local.lines().filter(|l| l.starts_with("a=candidate:")) {
        fragment.push_str(line.trim_end());
        fragment.push_str("\r\n");
    }
    let response = reqwest::Client::new()
        .patch(format!("{base}{}", viewer.location))
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", viewer.etag.clone().unwrap())
        .body(fragment)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "an ICE restart is answered with a fragment"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/trickle-ice-sdpfrag"
    );
    let new_etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(
        Some(&new_etag),
        viewer.etag.as_ref(),
        "the ETag changes with a restart"
    );
    let answer = SdpFrag::parse(&response.text().await.unwrap()).unwrap();
    let (ufrag, pwd) = (answer.ice_ufrag.unwrap(), answer.ice_pwd.unwrap());
    assert_ne!(
        ufrag,
        attribute(&old_answer, "a=ice-ufrag:"),
        "new server credentials"
    );
    assert!(
        !answer.candidates.is_empty(),
        "the server's candidates come along"
    );

    // The viewer applies the server's side of the restart.
    let mut new_answer = restart_offer(&old_answer, &ufrag, &pwd);
    let candidates: String = answer
        .candidates
        .iter()
        .map(|c| format!("a={}\r\n", c.candidate))
        .collect();
    new_answer = new_answer.replacen("a=mid:0\r\n", &format!("a=mid:0\r\n{candidates}"), 1);
    viewer
        .peer
        .set_remote_description(RTCSessionDescription::answer(new_answer).unwrap())
        .await
        .unwrap();

    // Frames keep coming well past the point where a broken restart would have failed ICE.
    let until = tokio::time::Instant::now() + Duration::from_secs(7);
    while tokio::time::Instant::now() < until {
        viewer.next_frame(Duration::from_secs(3)).await;
    }
    let status = support::status_json(&base).await;
    assert_eq!(status["viewers"][0]["state"], "connected", "{status}");
    viewer.delete(&base).await;
    viewer.close().await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mdns_candidate_is_accepted_and_ignored() {
    let daemon = start_daemon().await;
    let base = base_url(&daemon);
    let mut viewer = WhepViewer::connect(&base).await;
    let response = reqwest::Client::new()
        .patch(format!("{base}{}", viewer.location))
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body(
            "a=mid:0\r\na=candidate:1 1 udp 2122260223 9b36eaac-bb2e-49bb-bb78-21c41c499900.local \
             52719 typ host generation 0\r\n",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    viewer.next_frame(Duration::from_secs(5)).await;
    viewer.delete(&base).await;
    viewer.close().await;
    daemon.shutdown().await;
}

/// `ip port` of the answer's passive TCP candidate.
fn passive_tcp_candidate(answer: &str) -> Option<String> {
    answer
        .lines()
        .filter(|line| line.starts_with("a=candidate:") && line.contains("tcptype passive"))
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(2) == Some(&"tcp")).then(|| format!("{}:{}", fields[4], fields[5]))
        })
}

/// A STUN binding request whose USERNAME names no session, framed as RFC 4571 says.
fn framed_check_for_nobody() -> Vec<u8> {
    let username = b"nobody:x";
    let mut attributes = vec![0x00, 0x06, 0x00, username.len() as u8];
    attributes.extend_from_slice(username);
    attributes.resize(attributes.len().div_ceil(4) * 4, 0);
    let mut stun = vec![0x00, 0x01];
    stun.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    stun.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    stun.extend_from_slice(&[9; 12]);
    stun.extend_from_slice(&attributes);
    let mut framed = (stun.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&stun);
    framed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_offers_tcp_and_a_stranger_is_shown_the_door() {
    let daemon = start_daemon_with(|config| config.peer.tcp_candidates = true).await;
    let base = base_url(&daemon);
    let http = reqwest::Client::new();
    let offer = offer_for(Wants {
        video: true,
        audio: false,
    })
    .await;
    let created = post_offer(&http, &base, offer).await;
    assert_eq!(created.status(), 201);
    let answer = created.text().await.unwrap();
    let listener = passive_tcp_candidate(&answer)
        .unwrap_or_else(|| panic!("no passive TCP candidate in the answer:\n{answer}"));
    assert!(
        answer.contains(" udp ") && answer.contains("typ host"),
        "the UDP candidate stays:\n{answer}"
    );

    let mut stranger = tokio::net::TcpStream::connect(&listener)
        .await
        .unwrap_or_else(|e| panic!("the ICE-TCP listener {listener} takes no connection: {e}"));
    stranger
        .write_all(&framed_check_for_nobody())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stranger.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a connection with no viewer's check was not closed within 5 s: {read:?}"
    );

    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(
        health.status(),
        200,
        "the daemon is well after the stranger"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_without_a_relay_refuses_the_viewer_after_a_short_wait() {
    // A TURN server that never answers: the loop's Allocate goes unanswered.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = format!("turn:{}?transport=udp", silent.local_addr().unwrap());
    let daemon = start_daemon_with(|config| {
        config.peer.relay_only = true;
        config.peer.ice_servers = vec![IceServer {
            username: Some("club".into()),
            credential: Some("secret".into()),
            ..IceServer::stun(&url)
        }];
    })
    .await;
    let base = base_url(&daemon);
    let offer = offer_for(Wants {
        video: true,
        audio: false,
    })
    .await;
    let started = std::time::Instant::now();
    let response = post_offer(&reqwest::Client::new(), &base, offer).await;
    let waited = started.elapsed();
    assert_eq!(response.status(), 500);
    let body = response.text().await.unwrap();
    assert!(body.contains("no TURN relay is allocated"), "{body}");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(8),
        "answered after {waited:?}: the offer should wait a few seconds for a relay"
    );
    daemon.shutdown().await;
}
