//! Test workload: runs a program from memory, as fileless malware does. Copies PROGRAM into a
//! memfd named NAME and `fexecve`s it with ARGS (its `/proc/<pid>/exe` then reads
//! `/memfd:NAME (deleted)`).
//! Usage: memfd_exec NAME PROGRAM [ARGS...]

use std::ffi::CString;
use std::io::Write;
use std::os::fd::FromRawFd;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(name), Some(program)) = (args.get(1), args.get(2)) else {
        panic!("usage: memfd_exec NAME PROGRAM [ARGS...]");
    };
    let image = std::fs::read(program).expect("the program's bytes");
    let cname = CString::new(name.as_str()).expect("a name without NUL");
    // SAFETY: a plain syscall with a NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just made and is owned by nothing else; `file` owns it from here.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(&image).expect("the program into the memfd");
    let argv: Vec<CString> = std::iter::once(name.clone())
        .chain(args[3..].iter().cloned())
        .map(|a| CString::new(a).expect("an argument without NUL"))
        .collect();
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: `fd` is an open memfd holding an executable; argv and envp are NULL-terminated
    // arrays of NUL-terminated strings that outlive the call (which replaces this process).
    unsafe { libc::fexecve(fd, argv_ptrs.as_ptr(), envp.as_ptr()) };
    panic!("fexecve: {}", std::io::Error::last_os_error());
}
