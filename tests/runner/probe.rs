// A stand-in service for the cargohold-run tests, std only (compiled once per test session with rustc -O).
//
//   probe [--delay-ms N] [--exit N | --abort] [--listen ADDR:PORT] [--http] [--say TEXT] [--panic-after-ms N]
//         [--on-int graceful|ignore] [--ignore-term]
//
// Without --on-int and --ignore-term it installs no signal handler at all, like most services: SIGINT then
// kills it at once, unless whoever started it left SIGINT ignored.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" {
    // From the C library std already links; saves the libc crate.
    fn signal(signum: i32, handler: usize) -> usize;
}

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
const SIG_IGN: usize = 1;

extern "C" fn on_signal(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut delay, mut exit, mut listen, mut http) = (0u64, None, None, false);
    let (mut text, mut panic_after, mut on_int, mut ignore_term, mut abort) = (None, None, None, false, false);
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--delay-ms" => delay = value.parse().unwrap(),
            "--exit" => exit = Some(value.parse::<i32>().unwrap()),
            "--listen" => listen = Some(value),
            "--say" => text = Some(value),
            "--panic-after-ms" => panic_after = Some(value.parse::<u64>().unwrap()),
            "--on-int" => on_int = Some(value),
            "--http" => {
                http = true;
                i -= 1;
            }
            "--ignore-term" => {
                ignore_term = true;
                i -= 1;
            }
            "--abort" => {
                abort = true;
                i -= 1;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    match on_int.as_deref() {
        Some("graceful") => unsafe {
            signal(SIGINT, on_signal as *const () as usize);
        },
        Some("ignore") => unsafe {
            signal(SIGINT, SIG_IGN);
        },
        None => {}
        Some(other) => panic!("unknown --on-int {other}"),
    }
    if ignore_term {
        unsafe {
            signal(SIGTERM, SIG_IGN);
        }
    }
    say(&format!("probe {} starting", std::process::id()));
    std::thread::sleep(Duration::from_millis(delay));
    if abort {
        say("probe aborting");
        std::process::abort();
    }
    if let Some(code) = exit {
        say(&format!("probe exiting with {code}"));
        std::process::exit(code);
    }
    let listener = listen.map(|addr| {
        let listener = TcpListener::bind(&addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    });
    if let Some(text) = &text {
        say(text);
    }
    let started = Instant::now();
    loop {
        if STOP.load(Ordering::SeqCst) {
            say("probe: graceful shutdown");
            std::thread::sleep(Duration::from_millis(100));
            say("probe: bye");
            std::process::exit(0);
        }
        if let Some(ms) = panic_after {
            if started.elapsed() >= Duration::from_millis(ms) {
                panic!("probe panics as asked");
            }
        }
        if let Some(listener) = &listener {
            if let Ok((stream, _)) = listener.accept() {
                stream.set_nonblocking(false).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut stream = stream;
                if http {
                    let (status, body) = if request.starts_with("GET /version ") {
                        ("200 OK", "probe 1\n")
                    } else {
                        ("404 Not Found", "no\n")
                    };
                    let response = format!("HTTP/1.0 {status}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    let _ = stream.write_all(response.as_bytes());
                } else {
                    let _ = stream.write_all(format!("probe {}\n", std::process::id()).as_bytes());
                }
                continue;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
