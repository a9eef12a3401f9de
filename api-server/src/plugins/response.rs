//! Reading a provider's answer with a size limit. Provider APIs answer with small JSON documents; an endpoint
//! that answers with megabytes is not the provider (or is broken), and reading it whole would let whoever
//! controls it fill the server's memory. The body is read chunk by chunk and abandoned past the limit.

use bytes::Bytes;

/// The largest provider answer read (list pages of 1,000 faxes stay well below).
pub const LIMIT: usize = 4 * 1024 * 1024;

/// The answer's body, or `None` when it is longer than [`LIMIT`] or cannot be read.
pub async fn bounded(response: reqwest::Response) -> Option<Bytes> {
    bounded_to(response, LIMIT).await
}

/// The answer's body, or `None` when it is longer than `limit` or cannot be read (a sidecar's answers are
/// held to the protocol's smaller limit).
pub async fn bounded_to(mut response: reqwest::Response, limit: usize) -> Option<Bytes> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return None;
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if body.len() + chunk.len() > limit {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one raw HTTP answer per connection.
    async fn serve(answer: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 1024];
                    let _ = s.read(&mut request).await;
                    let _ = s.write_all(&answer).await;
                });
            }
        });
        url
    }

    async fn get(url: &str) -> Option<Bytes> {
        bounded(reqwest::get(url).await.unwrap()).await
    }

    #[tokio::test]
    async fn answers_past_the_limit_are_abandoned() {
        let small = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec()).await;
        assert_eq!(get(&small).await.as_deref(), Some(&b"{}"[..]));
        // Declares more than the limit: refused without reading (the server never sends it).
        let declared = serve(format!("HTTP/1.1 500 X\r\nContent-Length: {}\r\n\r\n", LIMIT + 1).into_bytes()).await;
        assert_eq!(get(&declared).await, None);
        // Chunked, without a length, past the limit: abandoned at the limit.
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        for _ in 0..(LIMIT / 65536 + 2) {
            chunked.extend_from_slice(b"10000\r\n");
            chunked.extend_from_slice(&[b'x'; 65536]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(get(&serve(chunked).await).await, None);
    }
}
