//! Batched UDP sends: the datagrams a worker produced in one pass leave in
//! one `sendmmsg(2)` call per 64, not one `sendto` each. The headers and
//! address buffers are kept between flushes, so a flush allocates nothing.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use bytes::BytesMut;
use socket2::SockAddr;

/// The most datagrams handed to the kernel in one call.
pub const BATCH: usize = 64;

/// Datagrams waiting to be sent.
#[derive(Default)]
pub struct UdpBatch {
    addrs: Vec<SockAddr>,
    bufs: Vec<BytesMut>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovecs` and `headers` are rebuilt from `bufs`
// and `addrs` at every flush and never dereferenced outside it.
unsafe impl Send for UdpBatch {}

/// What a flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Bytes in those datagrams.
    pub bytes: usize,
    /// Datagrams dropped because the kernel refused them.
    pub failed: usize,
}

impl UdpBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a datagram.
    pub fn push(&mut self, to: SocketAddr, data: BytesMut) {
        self.addrs.push(SockAddr::from(to));
        self.bufs.push(data);
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Sends everything queued on `socket`, `BATCH` datagrams per system call.
    pub fn flush(&mut self, socket: &UdpSocket) -> Flushed {
        let mut result = Flushed::default();
        let total = self.bufs.len();
        let mut start = 0;
        while start < total {
            let end = (start + BATCH).min(total);
            self.iovecs.clear();
            self.headers.clear();
            for buf in &mut self.bufs[start..end] {
                self.iovecs.push(libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                });
            }
            for (i, addr) in self.addrs[start..end].iter().enumerate() {
                // SAFETY: a zeroed msghdr is valid; the fields set below point
                // into `iovecs` and `addrs`, which outlive the call.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
                h.msg_hdr.msg_namelen = addr.len();
                h.msg_hdr.msg_iov = &mut self.iovecs[i];
                h.msg_hdr.msg_iovlen = 1;
                self.headers.push(h);
            }
            let mut done = 0;
            while done < self.headers.len() {
                let pending = &mut self.headers[done..];
                // SAFETY: `pending` is a valid array of initialised mmsghdr.
                let n = unsafe {
                    libc::sendmmsg(
                        socket.as_raw_fd(),
                        pending.as_mut_ptr(),
                        pending.len() as libc::c_uint,
                        0,
                    )
                };
                if n > 0 {
                    for h in &pending[..n as usize] {
                        result.bytes += h.msg_len as usize;
                    }
                    result.sent += n as usize;
                    done += n as usize;
                    continue;
                }
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram was refused (e.g. unreachable destination):
                // drop it alone and carry on with the rest.
                result.failed += 1;
                done += 1;
            }
            start = end;
        }
        self.addrs.clear();
        self.bufs.clear();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sends_every_datagram_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut b = UdpBatch::new();
        let n = BATCH * 2 + 5;
        for i in 0..n {
            b.push(to, BytesMut::from(&(i as u32).to_be_bytes()[..]));
        }
        let f = b.flush(&tx);
        assert_eq!(
            f,
            Flushed {
                sent: n,
                bytes: n * 4,
                failed: 0
            }
        );
        assert!(b.is_empty());
        let mut buf = [0u8; 16];
        for i in 0..n {
            let len = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..len], &(i as u32).to_be_bytes());
        }
    }
}
