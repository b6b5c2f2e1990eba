//! Holding back the tail of a streamed result.
//!
//! ClickHouse reports an error that happens after it has sent `200 OK` by
//! appending `Code: N, … DB::Exception …` to the body. Whoever streams a
//! result on must not pass that text on as data, so the last
//! [`HoldBack::new`]`(limit)` bytes stay here until more data (or the end)
//! shows they are rows.

use std::collections::VecDeque;

use crate::exception::{ServerException, find_trailing_exception};

/// Bytes held back by default: comfortably more than any exception text.
pub const DEFAULT_HOLD_BACK: usize = 16 * 1024;

/// A FIFO of result chunks that releases a chunk only once at least `limit`
/// bytes have arrived after it.
#[derive(Debug)]
pub struct HoldBack<C> {
    held: VecDeque<C>,
    held_len: usize,
    limit: usize,
}

impl<C: AsRef<[u8]>> HoldBack<C> {
    /// Hold back the last `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            held: VecDeque::new(),
            held_len: 0,
            limit,
        }
    }

    /// Add a chunk that just arrived.
    pub fn push(&mut self, chunk: C) {
        let len = chunk.as_ref().len();
        if len > 0 {
            self.held_len += len;
            self.held.push_back(chunk);
        }
    }

    /// The oldest chunk, if enough has arrived after it to be sure it is data.
    pub fn pop_ready(&mut self) -> Option<C> {
        let front = self.held.front()?.as_ref().len();
        if self.held_len - front >= self.limit {
            self.pop_any()
        } else {
            None
        }
    }

    /// The oldest chunk, ready or not (after [`HoldBack::finish`] succeeded).
    pub fn pop_any(&mut self) -> Option<C> {
        let chunk = self.held.pop_front()?;
        self.held_len -= chunk.as_ref().len();
        Some(chunk)
    }

    /// The result ended: the exception its tail ends with, if any. On `Ok`
    /// the held chunks are data; drain them with [`HoldBack::pop_any`].
    pub fn finish(&mut self) -> Result<(), ServerException> {
        if self.held.is_empty() {
            return Ok(());
        }
        let mut tail = Vec::with_capacity(self.held_len);
        for chunk in &self.held {
            tail.extend_from_slice(chunk.as_ref());
        }
        match find_trailing_exception(&tail) {
            Some((_, exception)) => {
                self.clear();
                Err(exception)
            }
            None => Ok(()),
        }
    }

    /// Drop everything held.
    pub fn clear(&mut self) {
        self.held.clear();
        self.held_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(hold: &mut HoldBack<Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = hold.pop_any() {
            out.extend(chunk);
        }
        out
    }

    #[test]
    fn releases_chunks_once_enough_follows() {
        let mut hold = HoldBack::new(4);
        hold.push(b"aa\n".to_vec());
        assert_eq!(hold.pop_ready(), None);
        hold.push(b"bbbb\n".to_vec());
        assert_eq!(hold.pop_ready(), Some(b"aa\n".to_vec()));
        assert_eq!(hold.pop_ready(), None);
        assert!(hold.finish().is_ok());
        assert_eq!(drain(&mut hold), b"bbbb\n");
    }

    #[test]
    fn an_appended_exception_is_an_error_not_data() {
        let mut hold = HoldBack::new(DEFAULT_HOLD_BACK);
        hold.push(b"{\"n\":1}\n".to_vec());
        hold.push(
            b"Code: 395, e.displayText() = DB::Exception: boom, e.what() = DB::Exception\n"
                .to_vec(),
        );
        let exception = hold.finish().expect_err("exception");
        assert_eq!(exception.code, 395);
        assert_eq!(hold.pop_any(), None);
    }
}
