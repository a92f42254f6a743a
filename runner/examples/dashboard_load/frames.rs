//! The part of a WebSocket client (RFC 6455) the load benchmark needs: the opening handshake,
//! reading the server's unmasked frames out of one reused buffer, and sending small masked text
//! frames. No fragmentation, no extensions; anything else is reported, not guessed at.

use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A frame read from the server; text borrows the connection's buffer until the next read.
#[derive(Debug)]
pub enum Frame<'a> {
    /// A complete text message.
    Text(&'a [u8]),
    /// A control or binary frame the benchmark does not use.
    Other,
    /// The server closed the connection.
    Closed,
}

/// An open WebSocket connection.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// Unread bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    /// Length of the frame handed out last, consumed on the next read.
    handed_out: usize,
}

const BUFFER: usize = 4096;

impl Connection {
    /// Connects to `address` (host:port) and upgrades `path` to a WebSocket.
    pub async fn open(address: &str, path: &str) -> io::Result<Connection> {
        let mut stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        // The key only has to be 16 bytes in base64; the benchmark does not check the answer's
        // hash, only that the server switched protocols.
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: d2Vpci1iZW5jaC1rZXkxMg==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut connection = Connection {
            stream,
            buffer: vec![0; BUFFER],
            start: 0,
            end: 0,
            handed_out: 0,
        };
        let head_len = loop {
            if let Some(at) = find(&connection.buffer[..connection.end], b"\r\n\r\n") {
                break at + 4;
            }
            if connection.fill().await? == 0 {
                return Err(io::Error::other("connection closed during the handshake"));
            }
        };
        if !connection.buffer.starts_with(b"HTTP/1.1 101") {
            let head = String::from_utf8_lossy(&connection.buffer[..head_len]).into_owned();
            return Err(io::Error::other(format!("upgrade refused: {head}")));
        }
        connection.start = head_len; // frames may follow the response in the same read
        Ok(connection)
    }

    /// The next frame from the server.
    pub async fn next(&mut self) -> io::Result<Frame<'_>> {
        self.start += std::mem::take(&mut self.handed_out);
        loop {
            if let Some((header, payload)) = self.frame_bounds()? {
                let opcode = self.buffer[self.start] & 0x0f;
                let fin = self.buffer[self.start] & 0x80 != 0;
                let body = self.start + header..self.start + header + payload;
                self.handed_out = header + payload;
                return Ok(match (fin, opcode) {
                    (true, 0x1) => Frame::Text(&self.buffer[body]),
                    (false, _) | (_, 0x0) => {
                        return Err(io::Error::other("fragmented message"));
                    }
                    (_, 0x8) => Frame::Closed,
                    _ => Frame::Other,
                });
            }
            if self.fill().await? == 0 {
                return Ok(Frame::Closed);
            }
        }
    }

    /// Sends a text message (masked, as clients must).
    pub async fn send_text(&mut self, text: &[u8]) -> io::Result<()> {
        if text.len() > 125 {
            return Err(io::Error::other("only short messages are supported"));
        }
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = Vec::with_capacity(6 + text.len());
        frame.extend_from_slice(&[0x81, 0x80 | text.len() as u8]);
        frame.extend_from_slice(&mask);
        frame.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await
    }

    /// Header and payload length of the frame at `start`, once it is complete in the buffer.
    fn frame_bounds(&self) -> io::Result<Option<(usize, usize)>> {
        let unread = &self.buffer[self.start..self.end];
        if unread.len() < 2 {
            return Ok(None);
        }
        if unread[1] & 0x80 != 0 {
            return Err(io::Error::other("the server masked a frame"));
        }
        let (header, payload) = match unread[1] & 0x7f {
            126 if unread.len() >= 4 => (4, u16::from_be_bytes([unread[2], unread[3]]) as usize),
            127 if unread.len() >= 10 => {
                let mut length = [0; 8];
                length.copy_from_slice(&unread[2..10]);
                (10, u64::from_be_bytes(length) as usize)
            }
            126 | 127 => return Ok(None),
            short => (2, short as usize),
        };
        Ok((unread.len() >= header + payload).then_some((header, payload)))
    }

    /// Reads more bytes, first moving unread ones to the front (or growing the buffer for a frame
    /// larger than it). Returns how many bytes arrived; 0 at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buffer.len() {
            self.buffer.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            if self.end == self.buffer.len() {
                self.buffer.resize(self.buffer.len() * 2, 0);
            }
        }
        let read = self.stream.read(&mut self.buffer[self.end..]).await?;
        self.end += read;
        Ok(read)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
