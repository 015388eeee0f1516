//! A real SMTP server for tests: a TCP listener speaking enough of RFC 5321 (greeting, EHLO/
//! HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) to receive what lettre sends,
//! keeping every accepted message. It can refuse (`421` at the greeting, as a server that is
//! down for maintenance) or hold its reply to DATA after storing the message (a server that
//! accepted the mail while the sender died before hearing so).

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the sink answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkMode {
    Accept,
    /// `421` at the greeting: every attempt fails (temporarily).
    Refuse,
    /// Store the message, then wait this long before the `250` to DATA.
    HoldDataReply(Duration),
}

/// One message as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// Headers and body, CRLF line ends, dots unstuffed.
    pub data: String,
}

impl ReceivedMail {
    /// A header's value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with(' ') || line.starts_with('\t') {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_owned());
                }
            }
        }
        value
    }

    /// The body after the headers, with quoted-printable soft breaks joined.
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        body.replace("=\r\n", "").replace("=3D", "=")
    }
}

pub struct SmtpSink {
    port: u16,
    mode: Arc<Mutex<SinkMode>>,
    mail: Arc<Mutex<Vec<ReceivedMail>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// Listen on a fresh port of 127.0.0.1.
    pub async fn start(mode: SinkMode) -> SmtpSink {
        SmtpSink::start_on(0, mode).await
    }

    /// Listen on `port` (0: any), e.g. the port a sender was configured with while no server ran.
    pub async fn start_on(port: u16, mode: SinkMode) -> SmtpSink {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind the SMTP sink");
        let port = listener.local_addr().expect("local address").port();
        let mail = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(mode));
        let (store, modes) = (mail.clone(), mode.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let mode = *modes.lock().expect("sink lock");
                tokio::spawn(session(socket, mode, store.clone()));
            }
        });
        SmtpSink { port, mode, mail, task }
    }

    /// Answer connections from now on as `mode` says (conversations under way keep theirs).
    pub fn set_mode(&self, mode: SinkMode) {
        *self.mode.lock().expect("sink lock") = mode;
    }

    /// A port on which nothing listens now (for a sender whose server is down).
    pub async fn free_port() -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        listener.local_addr().expect("local address").port()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `XDR_SMTP_URL` for this sink.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn received(&self) -> Vec<ReceivedMail> {
        self.mail.lock().expect("sink lock").clone()
    }

    /// Wait until at least `n` messages arrived (or `timeout` passed) and return them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(socket: TcpStream, mode: SinkMode, store: Arc<Mutex<Vec<ReceivedMail>>>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    if mode == SinkMode::Refuse {
        let _ = write.write_all(b"421 sink.test Service not available, try later\r\n").await;
        return;
    }
    if write.write_all(b"220 sink.test ESMTP test sink\r\n").await.is_err() {
        return;
    }
    let (mut from, mut rcpt) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        let verb = command.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" | "NOOP" => b"250 OK\r\n",
            "RSET" => {
                (from, rcpt) = (String::new(), Vec::new());
                b"250 OK\r\n"
            }
            "MAIL" => {
                from = angle(&command);
                b"250 OK\r\n"
            }
            "RCPT" => {
                rcpt.push(angle(&command));
                b"250 OK\r\n"
            }
            "DATA" => {
                if write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await.is_err() {
                    return;
                }
                let mut data = String::new();
                loop {
                    line.clear();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let mail = ReceivedMail { mail_from: from.clone(), rcpt_to: rcpt.clone(), data };
                store.lock().expect("sink lock").push(mail);
                if let SinkMode::HoldDataReply(hold) = mode {
                    tokio::time::sleep(hold).await;
                }
                b"250 OK queued\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 Bye\r\n").await;
                return;
            }
            _ => b"502 Command not implemented\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// The address between `<` and `>` of `MAIL FROM:<a>` / `RCPT TO:<b>`.
fn angle(command: &str) -> String {
    command.split_once('<').and_then(|(_, rest)| rest.split_once('>')).map(|(a, _)| a.to_owned()).unwrap_or_default()
}
