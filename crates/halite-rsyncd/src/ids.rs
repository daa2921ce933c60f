//! User and group names for the file list, and the randomness of challenges and seeds,
//! from libc and the kernel.

use std::ffi::CStr;

/// The name of `uid`, or None when it has none (or names cannot be read, as inside a
/// chroot without /etc/passwd).
pub fn user_name(uid: u32) -> Option<Vec<u8>> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter for getpwuid_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid buffers of the lengths given; result is checked before use.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: pw_name points into buf, NUL-terminated, while buf lives.
    Some(unsafe { CStr::from_ptr(pwd.pw_name) }.to_bytes().to_vec())
}

pub fn group_name(gid: u32) -> Option<Vec<u8>> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed group is a valid out-parameter for getgrgid_r.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: valid buffers of the lengths given; result is checked before use.
    let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: gr_name points into buf, NUL-terminated, while buf lives.
    Some(unsafe { CStr::from_ptr(grp.gr_name) }.to_bytes().to_vec())
}

/// User and group names by id, looked up once per transfer: a list of many files owned
/// by a few ids would otherwise read the password database once per file.
#[derive(Debug, Default)]
pub struct NameCache {
    users: std::collections::HashMap<u32, Option<Vec<u8>>>,
    groups: std::collections::HashMap<u32, Option<Vec<u8>>>,
}

impl NameCache {
    pub fn user(&mut self, uid: u32) -> Option<Vec<u8>> {
        self.users.entry(uid).or_insert_with(|| user_name(uid)).clone()
    }

    pub fn group(&mut self, gid: u32) -> Option<Vec<u8>> {
        self.groups.entry(gid).or_insert_with(|| group_name(gid)).clone()
    }
}

/// 32 bytes from the kernel's random source.
pub fn random_bytes() -> std::io::Result<[u8; 32]> {
    let mut b = [0u8; 32];
    let mut filled = 0;
    while filled < b.len() {
        // SAFETY: writes at most the remaining length into b.
        let n = unsafe { libc::getrandom(b[filled..].as_mut_ptr().cast(), b.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
    Ok(b)
}

/// The checksum seed a transfer uses when the client did not set one.
/// The seed only varies the block checksums between runs (it is no secret), so when the
/// random source fails the time and pid do, as in the reference.
pub fn random_seed() -> i32 {
    match random_bytes() {
        Ok(b) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        Err(_) => {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i32);
            now ^ ((std::process::id() as i32) << 6)
        }
    }
}

/// The client's host name as the reference's client_name() finds it: the reverse
/// lookup of its address, kept only if that name resolves back to the address
/// (otherwise anyone controlling their reverse zone could claim any name); "UNKNOWN"
/// when either step fails.
pub fn client_name(addr: std::net::IpAddr) -> String {
    use std::net::ToSocketAddrs;
    let addr = addr.to_canonical();
    let sa = std::net::SocketAddr::new(addr, 0);
    let (storage, len) = socket_addr_to_c(&sa);
    let mut host = vec![0 as libc::c_char; 1025];
    // SAFETY: a valid sockaddr of the given length and an output buffer of its length.
    let rc = unsafe {
        libc::getnameinfo(
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return "UNKNOWN".into();
    }
    // SAFETY: getnameinfo wrote a NUL-terminated name into host.
    let name = unsafe { CStr::from_ptr(host.as_ptr()) }.to_string_lossy().into_owned();
    let confirmed = (name.as_str(), 0u16)
        .to_socket_addrs()
        .map(|mut addrs| addrs.any(|a| a.ip().to_canonical() == addr))
        .unwrap_or(false);
    if confirmed {
        name
    } else {
        "UNKNOWN".into()
    }
}

fn socket_addr_to_c(sa: &std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: a zeroed sockaddr_storage is valid; the family-specific struct is written
    // into its start, which is large and aligned enough for either.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match sa {
        std::net::SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            (storage, std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        std::net::SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            (storage, std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}
