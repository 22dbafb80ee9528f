//! Reading a response body within a byte limit: pages (`max_body_bytes`) and OAuth2 token
//! responses (`auth.oauth2.max_response_bytes`) go through the same code. An announced
//! `Content-Length` above the limit is refused before any byte is read, and a body without
//! one is counted as it arrives, so no more than the limit is ever buffered.

/// Why a body was not read.
pub(crate) enum BodyError {
    /// Over the limit; `announced` when the `Content-Length` said so up front.
    TooLarge { announced: bool },
    /// The connection failed while the body arrived.
    Transport(reqwest::Error),
}

/// Largest buffer allocated up front from an announced length.
const MAX_PREALLOCATE: u64 = 8 << 20;

/// The whole body of `resp`, at most `limit` bytes.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { announced: true });
    }
    // Trust the announced length only so far.
    let capacity = resp
        .content_length()
        .unwrap_or(0)
        .min(limit)
        .min(MAX_PREALLOCATE);
    let mut buf = Vec::with_capacity(capacity as usize);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(BodyError::TooLarge { announced: false });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}
