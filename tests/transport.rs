//! HTTPS with a self-signed certificate, plain HTTP redirecting to it, and connections that
//! dawdle over their headers being cut off.

use fieldcast_test_support as support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Wants, offer_for, post_offer, start_daemon_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_and_http_redirects_there() {
    let daemon = start_daemon_with(|config| {
        config.tls.listen = Some("127.0.0.1:0".parse().unwrap());
        config.tls.self_signed = true;
    })
    .await;
    let https = daemon.tls_addr.expect("HTTPS is listening");
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://{}/whep?x=1", daemon.local_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308, "plain HTTP only redirects");
    assert_eq!(
        r.headers()["location"],
        format!("https://127.0.0.1:{}/whep?x=1", https.port()).as_str()
    );

    // The certificate is self-signed, so this client is told to accept it.
    let secure = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let health = secure
        .get(format!("https://{https}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let offer = offer_for(Wants {
        video: true,
        audio: false,
    })
    .await;
    let created = post_offer(&secure, &format!("https://{https}"), offer).await;
    assert_eq!(created.status(), 201, "WHEP works over HTTPS");
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let deleted = secure
        .delete(format!("https://{https}{location}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let daemon = start_daemon_with(|config| {
        config.limits.header_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = daemon.local_addr;
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 512];
        // Whatever the server says (408 or nothing), it must close the connection.
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Some(started.elapsed()),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(_) => return Some(started.elapsed()),
            }
        }
    })
    .await
    .unwrap();
    let after = closed_after.expect("the server kept a half-sent request open for 5 s");
    assert!(after < Duration::from_secs(3), "closed after {after:?}");
    // And the daemon still answers others.
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    daemon.shutdown().await;
}
