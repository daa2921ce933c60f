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
