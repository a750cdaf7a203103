//! Counts gRPC messages in a body as its data frames pass: each message is a 5-byte prefix
//! (a compression flag, then the length as a big-endian `u32`) and that many bytes, and frames
//! cut messages anywhere.

/// Where a body's message framing stands.
#[derive(Debug, Default)]
pub(crate) struct MessageCounter {
    /// Prefix bytes of the next message seen so far (0 to 4).
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message's payload still to come.
    payload_left: u64,
}

impl MessageCounter {
    /// Takes `data`; returns how many messages started in it.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut started = 0;
        while !data.is_empty() {
            if self.payload_left > 0 {
                let take = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.payload_left -= take as u64;
                data = &data[take..];
                continue;
            }
            let take = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = &data[take..];
            if self.prefix_len == 5 {
                let [_, a, b, c, d] = self.prefix;
                self.payload_left = u64::from(u32::from_be_bytes([a, b, c, d]));
                self.prefix_len = 0;
                started += 1;
            }
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(0).to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn counts_whole_split_and_empty_messages() {
        let mut stream = message(b"hello");
        stream.extend(message(b""));
        stream.extend(message(&[7; 300]));
        // Whole.
        assert_eq!(MessageCounter::default().feed(&stream), 3);
        // One byte at a time, and in uneven pieces.
        for size in [1, 2, 3, 7, 64] {
            let mut counter = MessageCounter::default();
            let n: u64 = stream.chunks(size).map(|c| counter.feed(c)).sum();
            assert_eq!(n, 3, "pieces of {size}");
        }
    }
}
