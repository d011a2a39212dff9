//! A terminal-multiplexer-like server state (sessions → windows → panes) as an mmlog
//! [`StateMachine`], with its commands and snapshot encoded by hand in a small binary
//! format. Shared by the `sessions` example and its integration test.

use std::collections::BTreeMap;

use mmlog::{Lsn, StateMachine};

/// A pane: a terminal of some size running in some directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pane {
    pub cols: u16,
    pub rows: u16,
    pub cwd: String,
}

/// A window: panes, one of them active.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Window {
    pub title: String,
    pub panes: BTreeMap<u32, Pane>,
    pub active_pane: Option<u32>,
}

/// A session: windows (one active) and an environment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Session {
    pub name: String,
    pub env: BTreeMap<String, String>,
    pub windows: BTreeMap<u32, Window>,
    pub active_window: Option<u32>,
}

/// The whole server state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Server {
    pub sessions: BTreeMap<u32, Session>,
}

/// What clients ask the server to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    NewSession {
        id: u32,
        name: String,
    },
    KillSession {
        id: u32,
    },
    SetEnv {
        session: u32,
        key: String,
        value: String,
    },
    NewWindow {
        session: u32,
        id: u32,
        title: String,
    },
    CloseWindow {
        session: u32,
        window: u32,
    },
    SelectWindow {
        session: u32,
        window: u32,
    },
    RenameWindow {
        session: u32,
        window: u32,
        title: String,
    },
    SplitPane {
        session: u32,
        window: u32,
        id: u32,
        cols: u16,
        rows: u16,
        cwd: String,
    },
    ClosePane {
        session: u32,
        window: u32,
        pane: u32,
    },
    SelectPane {
        session: u32,
        window: u32,
        pane: u32,
    },
    Resize {
        session: u32,
        window: u32,
        pane: u32,
        cols: u16,
        rows: u16,
    },
    Chdir {
        session: u32,
        window: u32,
        pane: u32,
        cwd: String,
    },
}

// ----- encoding: tag byte, then fields (u32/u16 little-endian, strings length-prefixed)

#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
}

struct In<'a>(&'a [u8]);

impl In<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().map_err(|_| "u16")?,
        ))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "u32")?,
        ))
    }
    fn str(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())
    }
    fn done(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err("trailing bytes".into())
        }
    }
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::default();
        match self {
            Command::NewSession { id, name } => o.u8(1).u32(*id).str(name),
            Command::KillSession { id } => o.u8(2).u32(*id),
            Command::SetEnv {
                session,
                key,
                value,
            } => o.u8(3).u32(*session).str(key).str(value),
            Command::NewWindow { session, id, title } => o.u8(4).u32(*session).u32(*id).str(title),
            Command::CloseWindow { session, window } => o.u8(5).u32(*session).u32(*window),
            Command::SelectWindow { session, window } => o.u8(6).u32(*session).u32(*window),
            Command::RenameWindow {
                session,
                window,
                title,
            } => o.u8(7).u32(*session).u32(*window).str(title),
            Command::SplitPane {
                session,
                window,
                id,
                cols,
                rows,
                cwd,
            } => o
                .u8(8)
                .u32(*session)
                .u32(*window)
                .u32(*id)
                .u16(*cols)
                .u16(*rows)
                .str(cwd),
            Command::ClosePane {
                session,
                window,
                pane,
            } => o.u8(9).u32(*session).u32(*window).u32(*pane),
            Command::SelectPane {
                session,
                window,
                pane,
            } => o.u8(10).u32(*session).u32(*window).u32(*pane),
            Command::Resize {
                session,
                window,
                pane,
                cols,
                rows,
            } => o
                .u8(11)
                .u32(*session)
                .u32(*window)
                .u32(*pane)
                .u16(*cols)
                .u16(*rows),
            Command::Chdir {
                session,
                window,
                pane,
                cwd,
            } => o.u8(12).u32(*session).u32(*window).u32(*pane).str(cwd),
        };
        o.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Command, String> {
        let mut i = In(bytes);
        let c = match i.u8()? {
            1 => Command::NewSession {
                id: i.u32()?,
                name: i.str()?,
            },
            2 => Command::KillSession { id: i.u32()? },
            3 => Command::SetEnv {
                session: i.u32()?,
                key: i.str()?,
                value: i.str()?,
            },
            4 => Command::NewWindow {
                session: i.u32()?,
                id: i.u32()?,
                title: i.str()?,
            },
            5 => Command::CloseWindow {
                session: i.u32()?,
                window: i.u32()?,
            },
            6 => Command::SelectWindow {
                session: i.u32()?,
                window: i.u32()?,
            },
            7 => Command::RenameWindow {
                session: i.u32()?,
                window: i.u32()?,
                title: i.str()?,
            },
            8 => Command::SplitPane {
                session: i.u32()?,
                window: i.u32()?,
                id: i.u32()?,
                cols: i.u16()?,
                rows: i.u16()?,
                cwd: i.str()?,
            },
            9 => Command::ClosePane {
                session: i.u32()?,
                window: i.u32()?,
                pane: i.u32()?,
            },
            10 => Command::SelectPane {
                session: i.u32()?,
                window: i.u32()?,
                pane: i.u32()?,
            },
            11 => Command::Resize {
                session: i.u32()?,
                window: i.u32()?,
                pane: i.u32()?,
                cols: i.u16()?,
                rows: i.u16()?,
            },
            12 => Command::Chdir {
                session: i.u32()?,
                window: i.u32()?,
                pane: i.u32()?,
                cwd: i.str()?,
            },
            t => return Err(format!("unknown command tag {t}")),
        };
        i.done()?;
        Ok(c)
    }
}

impl Server {
    /// Applies a command; commands naming things that do not exist do nothing (as a
    /// server would answer "no such session").
    pub fn run(&mut self, c: &Command) {
        match c {
            Command::NewSession { id, name } => {
                self.sessions.entry(*id).or_insert_with(|| Session {
                    name: name.clone(),
                    ..Session::default()
                });
            }
            Command::KillSession { id } => {
                self.sessions.remove(id);
            }
            Command::SetEnv {
                session,
                key,
                value,
            } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.env.insert(key.clone(), value.clone());
                }
            }
            Command::NewWindow { session, id, title } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.windows.entry(*id).or_insert_with(|| Window {
                        title: title.clone(),
                        ..Window::default()
                    });
                    s.active_window = Some(*id);
                }
            }
            Command::CloseWindow { session, window } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.windows.remove(window);
                    if s.active_window == Some(*window) {
                        s.active_window = s.windows.keys().next_back().copied();
                    }
                }
            }
            Command::SelectWindow { session, window } => {
                if let Some(s) = self.sessions.get_mut(session)
                    && s.windows.contains_key(window)
                {
                    s.active_window = Some(*window);
                }
            }
            Command::RenameWindow {
                session,
                window,
                title,
            } => {
                if let Some(w) = self.window(*session, *window) {
                    w.title = title.clone();
                }
            }
            Command::SplitPane {
                session,
                window,
                id,
                cols,
                rows,
                cwd,
            } => {
                if let Some(w) = self.window(*session, *window) {
                    w.panes.entry(*id).or_insert(Pane {
                        cols: *cols,
                        rows: *rows,
                        cwd: cwd.clone(),
                    });
                    w.active_pane = Some(*id);
                }
            }
            Command::ClosePane {
                session,
                window,
                pane,
            } => {
                if let Some(w) = self.window(*session, *window) {
                    w.panes.remove(pane);
                    if w.active_pane == Some(*pane) {
                        w.active_pane = w.panes.keys().next_back().copied();
                    }
                }
            }
            Command::SelectPane {
                session,
                window,
                pane,
            } => {
                if let Some(w) = self.window(*session, *window)
                    && w.panes.contains_key(pane)
                {
                    w.active_pane = Some(*pane);
                }
            }
            Command::Resize {
                session,
                window,
                pane,
                cols,
                rows,
            } => {
                if let Some(p) = self
                    .window(*session, *window)
                    .and_then(|w| w.panes.get_mut(pane))
                {
                    p.cols = *cols;
                    p.rows = *rows;
                }
            }
            Command::Chdir {
                session,
                window,
                pane,
                cwd,
            } => {
                if let Some(p) = self
                    .window(*session, *window)
                    .and_then(|w| w.panes.get_mut(pane))
                {
                    p.cwd = cwd.clone();
                }
            }
        }
    }

    fn window(&mut self, session: u32, window: u32) -> Option<&mut Window> {
        self.sessions.get_mut(&session)?.windows.get_mut(&window)
    }

    fn encode(&self) -> Vec<u8> {
        let mut o = Out::default();
        o.u32(self.sessions.len() as u32);
        for (id, s) in &self.sessions {
            o.u32(*id)
                .str(&s.name)
                .u32(s.active_window.map_or(u32::MAX, |w| w));
            o.u32(s.env.len() as u32);
            for (k, v) in &s.env {
                o.str(k).str(v);
            }
            o.u32(s.windows.len() as u32);
            for (wid, w) in &s.windows {
                o.u32(*wid)
                    .str(&w.title)
                    .u32(w.active_pane.map_or(u32::MAX, |p| p));
                o.u32(w.panes.len() as u32);
                for (pid, p) in &w.panes {
                    o.u32(*pid).u16(p.cols).u16(p.rows).str(&p.cwd);
                }
            }
        }
        o.0
    }

    fn decode(bytes: &[u8]) -> Result<Server, String> {
        let opt = |v: u32| (v != u32::MAX).then_some(v);
        let mut i = In(bytes);
        let mut server = Server::default();
        for _ in 0..i.u32()? {
            let id = i.u32()?;
            let mut s = Session {
                name: i.str()?,
                active_window: opt(i.u32()?),
                ..Session::default()
            };
            for _ in 0..i.u32()? {
                let k = i.str()?;
                s.env.insert(k, i.str()?);
            }
            for _ in 0..i.u32()? {
                let wid = i.u32()?;
                let mut w = Window {
                    title: i.str()?,
                    active_pane: opt(i.u32()?),
                    ..Window::default()
                };
                for _ in 0..i.u32()? {
                    let pid = i.u32()?;
                    w.panes.insert(
                        pid,
                        Pane {
                            cols: i.u16()?,
                            rows: i.u16()?,
                            cwd: i.str()?,
                        },
                    );
                }
                s.windows.insert(wid, w);
            }
            server.sessions.insert(id, s);
        }
        i.done()?;
        Ok(server)
    }

    /// A short human description.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (id, s) in &self.sessions {
            out += &format!(
                "session {id} {:?} env={:?} active window {:?}\n",
                s.name, s.env, s.active_window
            );
            for (wid, w) in &s.windows {
                out += &format!(
                    "  window {wid} {:?} active pane {:?}\n",
                    w.title, w.active_pane
                );
                for (pid, p) in &w.panes {
                    out += &format!("    pane {pid} {}x{} in {}\n", p.cols, p.rows, p.cwd);
                }
            }
        }
        out
    }
}

impl StateMachine for Server {
    fn initial() -> Self {
        Server::default()
    }

    fn apply(&mut self, _lsn: Lsn, command: &[u8]) {
        // A command that does not decode was never written by this server: skip it
        // rather than stop the server (it was logged, so it is replayed identically).
        if let Ok(c) = Command::decode(command) {
            self.run(&c);
        }
    }

    fn snapshot_len(&self) -> usize {
        self.encode().len()
    }

    fn write_snapshot(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.encode());
    }

    fn restore(snapshot: &[u8]) -> Result<Self, String> {
        Server::decode(snapshot)
    }
}

/// A deterministic stream of plausible commands: what a busy server sees.
pub struct Workload {
    state: u64,
    next_id: u32,
}

impl Workload {
    pub fn new(seed: u64) -> Workload {
        Workload {
            state: seed ^ 0x5151_5151_dead_beef,
            next_id: 1,
        }
    }

    fn rand(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick(&mut self, n: u32) -> u32 {
        (self.rand() % u64::from(n.max(1))) as u32
    }

    /// The next command, chosen to usually hit things that exist in `server`.
    pub fn next(&mut self, server: &Server) -> Command {
        let sessions: Vec<u32> = server.sessions.keys().copied().collect();
        let id = self.next_id;
        if sessions.is_empty() || self.pick(20) == 0 {
            self.next_id += 1;
            return Command::NewSession {
                id,
                name: format!("s{id}"),
            };
        }
        let session = sessions[self.pick(sessions.len() as u32) as usize];
        let s = &server.sessions[&session];
        let windows: Vec<u32> = s.windows.keys().copied().collect();
        if windows.is_empty() || self.pick(8) == 0 {
            self.next_id += 1;
            return Command::NewWindow {
                session,
                id,
                title: format!("w{id}"),
            };
        }
        let window = windows[self.pick(windows.len() as u32) as usize];
        let panes: Vec<u32> = s.windows[&window].panes.keys().copied().collect();
        if panes.is_empty() || self.pick(5) == 0 {
            self.next_id += 1;
            return Command::SplitPane {
                session,
                window,
                id,
                cols: 80 + self.pick(100) as u16,
                rows: 24 + self.pick(40) as u16,
                cwd: format!("/home/user/p{}", self.pick(50)),
            };
        }
        let pane = panes[self.pick(panes.len() as u32) as usize];
        match self.pick(11) {
            0 => Command::SelectWindow { session, window },
            1 => Command::SelectPane {
                session,
                window,
                pane,
            },
            2 => Command::Resize {
                session,
                window,
                pane,
                cols: 40 + self.pick(200) as u16,
                rows: 10 + self.pick(80) as u16,
            },
            3 => Command::Chdir {
                session,
                window,
                pane,
                cwd: format!("/srv/{}", self.pick(1000)),
            },
            4 => Command::RenameWindow {
                session,
                window,
                title: format!("t{}", self.pick(1000)),
            },
            5 => Command::SetEnv {
                session,
                key: format!("K{}", self.pick(8)),
                value: format!("v{}", self.pick(1000)),
            },
            6 => Command::ClosePane {
                session,
                window,
                pane,
            },
            7 => Command::CloseWindow { session, window },
            8 if self.pick(4) == 0 => Command::KillSession { id: session },
            _ => Command::Resize {
                session,
                window,
                pane,
                cols: 100,
                rows: 30,
            },
        }
    }
}
