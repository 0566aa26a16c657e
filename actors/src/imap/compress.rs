//! COMPRESS=DEFLATE (RFC 4978): once the server has sent the tagged OK,
//! both directions are one raw DEFLATE stream each (RFC 1951, no zlib
//! header), and the server ends every burst of output with a sync flush so
//! the client can read it at once.
//!
//! Inflated input is handed out in pieces of at most [`INFLATE_PIECE`]
//! bytes, and the session feeds and drains its framer after each piece, so
//! a small compressed chunk that inflates to a great deal (a "zip bomb")
//! never sits in memory whole.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The most inflated bytes handed out at once.
pub const INFLATE_PIECE: usize = 64 * 1024;

pub struct Deflate {
    inflate: Decompress,
    deflate: Compress,
    piece: Vec<u8>,
}

impl Default for Deflate {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflate {
    pub fn new() -> Deflate {
        Deflate {
            inflate: Decompress::new(false),
            deflate: Compress::new(Compression::default(), false),
            piece: vec![0; INFLATE_PIECE],
        }
    }

    /// Inflates the next piece of `input` starting at `*pos`; `Ok(None)`
    /// once all of `input` is consumed and nothing more comes out of it.
    pub fn inflate_piece(
        &mut self,
        input: &[u8],
        pos: &mut usize,
    ) -> Result<Option<&[u8]>, String> {
        let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
        let status = self
            .inflate
            .decompress(&input[*pos..], &mut self.piece, FlushDecompress::None)
            .map_err(|e| format!("invalid DEFLATE data: {e}"))?;
        *pos += (self.inflate.total_in() - before_in) as usize;
        let produced = (self.inflate.total_out() - before_out) as usize;
        if status == Status::StreamEnd && *pos < input.len() {
            return Err("data after the end of the DEFLATE stream".into());
        }
        Ok((produced > 0).then(|| &self.piece[..produced]))
    }

    /// Compresses `data` and sync-flushes, so the peer can decode all of it.
    pub fn deflate(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut pos = 0;
        loop {
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&data[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| format!("DEFLATE failed: {e}"))?;
            pos += (self.deflate.total_in() - before) as usize;
            // Done when all input is taken and the flush did not fill the
            // buffer (a full buffer may hide more flush output).
            if pos == data.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(4096));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(d: &mut Deflate, input: &[u8]) -> Vec<u8> {
        let mut pos = 0;
        let mut out = Vec::new();
        while let Some(piece) = d.inflate_piece(input, &mut pos).unwrap() {
            assert!(piece.len() <= INFLATE_PIECE);
            out.extend_from_slice(piece);
        }
        assert_eq!(pos, input.len());
        out
    }

    #[test]
    fn round_trip_through_two_streams() {
        let mut server = Deflate::new();
        let mut client = Deflate::new();
        for msg in [&b"a1 NOOP\r\n"[..], b"", &vec![b'x'; 300_000]] {
            let wire = client.deflate(msg).unwrap();
            assert_eq!(inflate_all(&mut server, &wire), msg);
        }
    }

    #[test]
    fn a_bomb_comes_out_in_bounded_pieces() {
        let mut client = Deflate::new();
        let wire = client.deflate(&vec![0u8; 10 * 1024 * 1024]).unwrap();
        assert!(wire.len() < 64 * 1024, "compressed {}", wire.len());
        let mut server = Deflate::new();
        let mut pos = 0;
        let mut total = 0;
        while let Some(piece) = server.inflate_piece(&wire, &mut pos).unwrap() {
            assert!(piece.len() <= INFLATE_PIECE);
            total += piece.len();
        }
        assert_eq!(total, 10 * 1024 * 1024);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut server = Deflate::new();
        let mut pos = 0;
        assert!(server.inflate_piece(&[0xff; 16], &mut pos).is_err());
    }
}
