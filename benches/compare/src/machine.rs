//! Facts about the machine and the file system the run used, read from /proc, /sys and
//! statfs (best effort: whatever cannot be read is reported as unknown).

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The facts, as markdown list items.
pub fn facts(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown")
        .to_string();
    let logical = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mhz = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("cpu MHz")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .map(|m| format!(", {m} MHz"))
        .unwrap_or_default();
    out.push(("CPU".into(), format!("{model}{mhz}")));
    out.push((
        "cores".into(),
        format!(
            "{logical} logical (available to this process: {})",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
    ));
    let mem = read("/proc/meminfo")
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(|r| r.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown".into());
    out.push(("memory".into(), mem));
    let kernel = read("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into());
    out.push(("kernel".into(), kernel.trim().to_string()));
    let virt = if cpuinfo.contains(" hypervisor") {
        "virtual machine (cpuinfo flag `hypervisor`)"
    } else {
        "no hypervisor flag"
    };
    out.push(("virtualisation".into(), virt.into()));

    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    out.push(("temp dir".into(), canonical.display().to_string()));
    if let Some((device, mount_point, fs_type, options)) = mount_of(&canonical) {
        out.push((
            "file system".into(),
            format!("{fs_type} on {device}, mounted at {mount_point} ({options})"),
        ));
        out.push(("disk".into(), disk(&device)));
    }
    if let Some(statfs) = statfs(&canonical) {
        out.push(("statfs".into(), statfs));
    }
    out
}

/// The /proc/mounts line whose mount point is the longest prefix of `path`.
fn mount_of(path: &Path) -> Option<(String, String, String, String)> {
    let mounts = read("/proc/mounts")?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let mount_point = fields.next()?.replace("\\040", " ");
            let fs_type = fields.next()?;
            let options = fields.next()?;
            path.starts_with(&mount_point).then(|| {
                (
                    device.to_string(),
                    mount_point,
                    fs_type.to_string(),
                    options.to_string(),
                )
            })
        })
        .max_by_key(|(_, mount_point, _, _)| mount_point.len())
}

/// What /sys says about the block device behind `device` (e.g. `/dev/vda`).
fn disk(device: &str) -> String {
    let Some(name) = device.strip_prefix("/dev/") else {
        return format!("{device} (not a block device)");
    };
    // A partition's queue lives on its parent disk.
    let mut base = format!("/sys/class/block/{name}");
    if Path::new(&format!("{base}/partition")).exists()
        && let Ok(real) = std::fs::canonicalize(&base)
        && let Some(parent) = real.parent()
    {
        base = parent.display().to_string();
    }
    let get = |rel: &str| read(&format!("{base}/{rel}")).map(|s| s.trim().to_string());
    let mut out = name.to_string();
    if let Some(model) = get("device/model").filter(|m| !m.is_empty()) {
        let _ = write!(out, ", model {model}");
    }
    if let Ok(driver) = std::fs::read_link(format!("{base}/device/driver"))
        && let Some(driver) = driver.file_name()
    {
        let _ = write!(out, ", driver {}", driver.to_string_lossy());
    }
    if let Some(sectors) = get("size").and_then(|s| s.parse::<u64>().ok()) {
        let _ = write!(out, ", {} GiB", sectors * 512 / (1 << 30));
    }
    match get("queue/rotational").as_deref() {
        Some("0") => out.push_str(", non-rotational"),
        Some("1") => out.push_str(", rotational"),
        _ => {}
    }
    if let Some(scheduler) = get("queue/scheduler") {
        let _ = write!(out, ", scheduler `{scheduler}`");
    }
    if let Some(cache) = get("queue/write_cache") {
        let _ = write!(out, ", write cache: {cache}");
    }
    out
}

/// File system type, block size and space, from statfs(2).
fn statfs(path: &Path) -> Option<String> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs is plain old data; all-zero is a valid value.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a NUL-terminated string and `buf` a writable statfs, both
    // alive for the call.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut buf) };
    if rc != 0 {
        return None;
    }
    let block = buf.f_bsize as u64;
    let gib = |blocks: u64| blocks * block / (1 << 30);
    Some(format!(
        "type 0x{:x}, block {} B, {} GiB total, {} GiB available",
        buf.f_type,
        block,
        gib(buf.f_blocks),
        gib(buf.f_bavail)
    ))
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> String {
    read("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}
