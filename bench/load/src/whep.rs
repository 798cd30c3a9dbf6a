//! Joining fieldcast: the offer in `POST /whep`, the answer in the `201`, `DELETE` to leave.

use crate::peer::ViewerPeer;

pub async fn join(
    http: &reqwest::Client,
    base: &str,
    peer: &mut ViewerPeer,
) -> Result<String, String> {
    let offer = peer.offer().await?;
    let response = http
        .post(format!("{base}/whep"))
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .map_err(|e| format!("POST /whep: {e}"))?;
    let status = response.status();
    if status != 201 {
        let body = response.text().await.unwrap_or_default();
        return Err(format!("POST /whep answered {status}: {body}"));
    }
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or("201 without Location")?
        .to_owned();
    let answer = response.text().await.map_err(|e| e.to_string())?;
    peer.accept_answer(answer).await?;
    Ok(location)
}

pub async fn leave(http: &reqwest::Client, base: &str, location: &str) {
    let _ = http.delete(format!("{base}{location}")).send().await;
}
