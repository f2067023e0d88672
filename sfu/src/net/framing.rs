//! RFC 4571 framing for ICE-TCP: each packet is preceded by its length as a
//! 16-bit big-endian number.

/// Accumulates bytes read from a TCP stream and yields whole packets.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete packet, if one is buffered.
    pub fn next_packet(&mut self) -> Option<Vec<u8>> {
        if self.buf.len() < 2 {
            return None;
        }
        let len = u16::from_be_bytes([self.buf[0], self.buf[1]]) as usize;
        if self.buf.len() < 2 + len {
            return None;
        }
        let packet = self.buf[2..2 + len].to_vec();
        self.buf.drain(..2 + len);
        Some(packet)
    }

    /// Bytes buffered but not yet a whole packet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Writes `packet` with its length prefix into `out`; `None` if it does not fit
/// or is longer than a frame can say.
pub fn frame_into(packet: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = u16::try_from(packet.len()).ok()?;
    let total = 2 + packet.len();
    if out.len() < total {
        return None;
    }
    out[..2].copy_from_slice(&len.to_be_bytes());
    out[2..total].copy_from_slice(packet);
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_split_anywhere() {
        let packets: Vec<Vec<u8>> = vec![vec![1, 2, 3], vec![], vec![9; 300]];
        let mut wire = Vec::new();
        for p in &packets {
            let mut b = vec![0; p.len() + 2];
            let n = frame_into(p, &mut b).unwrap();
            wire.extend_from_slice(&b[..n]);
        }
        for split in 0..wire.len() {
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            d.push(&wire[..split]);
            while let Some(p) = d.next_packet() {
                got.push(p);
            }
            d.push(&wire[split..]);
            while let Some(p) = d.next_packet() {
                got.push(p);
            }
            assert_eq!(got, packets);
            assert_eq!(d.buffered(), 0);
        }
    }
}
