//! Start-up on a kernel that cannot confine opens: the daemon must refuse to start and
//! say why, not start and fail every file of every transfer.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// A seccomp filter that makes `openat2` fail with ENOSYS, as on a kernel before 5.6;
/// every other system call is allowed.
fn without_openat2() -> std::io::Result<()> {
    const LOAD_NR: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JUMP_EQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let program = [
        // seccomp_data.nr is the first field.
        libc::sock_filter { code: LOAD_NR, jt: 0, jf: 0, k: 0 },
        libc::sock_filter { code: JUMP_EQ, jt: 0, jf: 1, k: libc::SYS_openat2 as u32 },
        libc::sock_filter { code: RET, jt: 0, jf: 0, k: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32 },
        libc::sock_filter { code: RET, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW },
    ];
    let prog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut libc::sock_filter };
    // SAFETY: prctl with the documented arguments; `prog` outlives the call, which
    // copies the filter into the kernel.
    unsafe {
        let no_arg: libc::c_ulong = 0;
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, no_arg, no_arg, no_arg) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn a_kernel_without_openat2_stops_the_daemon_at_start_up_saying_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("rsyncd.conf");
    std::fs::write(&config, format!("[code]\n    path = {}\n", dir.path().display())).expect("config");
    let run = |confined: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_halite-rsyncd"));
        cmd.arg("--config").arg(&config).arg("--check");
        if confined {
            // SAFETY: only async-signal-safe calls (prctl) between fork and exec.
            unsafe { cmd.pre_exec(without_openat2) };
        }
        cmd.output()
    };

    let normal = run(false).expect("run halite-rsyncd");
    assert!(normal.status.success(), "{normal:?}");

    let out = match run(true) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("no seccomp filters here ({e}): skipped");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without openat2: {out:?}");
    assert!(stderr.contains("openat2 is missing") && stderr.contains("Linux before 5.6"), "{stderr}");
}
