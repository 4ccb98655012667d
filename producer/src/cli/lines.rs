//! Reading `--batch` input: one line at a time, each bounded, so a huge line is
//! refused (and skipped) without being buffered, and the lines after it still count.

use futures_util::Stream;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

#[derive(Debug)]
pub enum LineError {
    TooLong,
    NotUtf8,
    Io(std::io::Error),
}

/// Lines of `r` without their newline; a line over `max` bytes yields `TooLong`.
pub fn bounded_lines<R: AsyncRead + Unpin>(
    r: R,
    max: usize,
) -> impl Stream<Item = Result<String, LineError>> {
    futures_util::stream::unfold(Some(BufReader::new(r)), move |reader| async move {
        let mut r = reader?;
        let mut buf = Vec::new();
        match (&mut r)
            .take(max as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) => None,
            // An input that failed once is not read again (no endless error loop).
            Err(e) => Some((Err(LineError::Io(e)), None)),
            Ok(_) => {
                let complete = buf.last() == Some(&b'\n');
                if complete {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                if buf.len() > max {
                    if !complete && let Err(e) = skip_line(&mut r).await {
                        return Some((Err(LineError::Io(e)), None));
                    }
                    return Some((Err(LineError::TooLong), Some(r)));
                }
                match String::from_utf8(buf) {
                    Ok(line) => Some((Ok(line), Some(r))),
                    Err(_) => Some((Err(LineError::NotUtf8), Some(r))),
                }
            }
        }
    })
}

/// Discards the rest of the current line without buffering it.
async fn skip_line<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<()> {
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            r.consume(i + 1);
            return Ok(());
        }
        let n = buf.len();
        r.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn long_lines_are_refused_and_the_rest_still_read() {
        let mut input = format!("a\r\n{}\nb\n", "x".repeat(100)).into_bytes();
        input.extend_from_slice(b"\xff\n");
        input.extend_from_slice("y".repeat(3).as_bytes());
        let got: Vec<_> = bounded_lines(input.as_slice(), 10).collect().await;
        assert_eq!(got.len(), 5);
        assert_eq!(got[0].as_ref().ok().map(String::as_str), Some("a"));
        assert!(matches!(got[1], Err(LineError::TooLong)));
        assert_eq!(got[2].as_ref().ok().map(String::as_str), Some("b"));
        assert!(matches!(got[3], Err(LineError::NotUtf8)));
        assert_eq!(got[4].as_ref().ok().map(String::as_str), Some("yyy"));
    }
}
