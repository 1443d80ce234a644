//! A type-2 AppImage runtime for Kiln: an ELF with `AI\x02` at offset 8 (written by the
//! packaging script) followed by a SquashFS image of the AppDir.
//!
//! Instead of mounting the image with FUSE (often missing), it extracts it once into the user's
//! cache (`$XDG_CACHE_HOME/kiln-appimage/<size>-<mtime>/`, reused while the AppImage file is
//! unchanged) and runs `AppRun` from there with the arguments, setting `APPIMAGE`, `APPDIR`,
//! `ARGV0` and `OWD` as the AppImage specification describes. Also understands
//! `--appimage-extract` (into `./squashfs-root`), `--appimage-extract-and-run` (into a temporary
//! folder, removed when the program exits), `--appimage-offset`, `--appimage-version` and
//! `--appimage-help`. The image read is this executable (`/proc/self/exe`), or
//! `TARGET_APPIMAGE` when set, as in the reference runtime (`APPIMAGE` is not trusted: a parent
//! AppImage sets it for its own children).

use backhand::{FilesystemReader, InnerNode};
use std::ffi::OsString;
use std::fs;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The end of the ELF file at `path`: where its section header table ends (the SquashFS image
/// starts there).
fn elf_end(path: &Path) -> Result<u64, String> {
    let mut file = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut header = [0u8; 64];
    file.read_exact(&mut header)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Err(format!(
            "{} is not a 64-bit little-endian ELF",
            path.display()
        ));
    }
    let u64_at = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().unwrap_or([0; 8]));
    let u16_at = |i: usize| u64::from(u16::from_le_bytes([header[i], header[i + 1]]));
    Ok(u64_at(0x28) + u16_at(0x3a) * u16_at(0x3c))
}

/// Extracts the SquashFS image at `offset` of `appimage` into `dir` (created).
fn extract(appimage: &Path, offset: u64, dir: &Path) -> Result<(), String> {
    let mut file = fs::File::open(appimage).map_err(|e| format!("{}: {e}", appimage.display()))?;
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let reader = BufReader::new(file);
    let fs_reader = FilesystemReader::from_reader_with_offset(reader, offset)
        .map_err(|e| format!("the AppImage's SquashFS image cannot be read: {e}"))?;
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for node in fs_reader.files() {
        let relative = node.fullpath.strip_prefix("/").unwrap_or(&node.fullpath);
        if relative
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!(
                "unsafe path in the image: {}",
                node.fullpath.display()
            ));
        }
        let target = dir.join(relative);
        let mode = u32::from(node.header.permissions) & 0o7777;
        match &node.inner {
            InnerNode::Dir(_) => {
                fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
            }
            InnerNode::File(f) => {
                let mut out =
                    fs::File::create(&target).map_err(|e| format!("{}: {e}", target.display()))?;
                let mut data = fs_reader.file(f).reader();
                std::io::copy(&mut data, &mut out)
                    .map_err(|e| format!("{}: {e}", target.display()))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("{}: {e}", target.display()))?;
            }
            InnerNode::Symlink(link) => {
                symlink(&link.link, &target).map_err(|e| format!("{}: {e}", target.display()))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// `$XDG_CACHE_HOME/kiln-appimage`, else `~/.cache/kiln-appimage`.
fn cache_root() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("kiln-appimage"))
}

fn run() -> Result<ExitCode, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this AppImage: {e}"))?;
    let appimage = std::env::var_os("TARGET_APPIMAGE")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .unwrap_or(exe);
    let offset = elf_end(&appimage)?;
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = if args.is_empty() {
        OsString::new()
    } else {
        args.remove(0)
    };
    match args.first().and_then(|a| a.to_str()) {
        Some("--appimage-offset") => {
            println!("{offset}");
            return Ok(ExitCode::SUCCESS);
        }
        Some("--appimage-version") => {
            println!("Kiln AppImage runtime {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
        Some("--appimage-help") => {
            println!(
                "--appimage-extract    extract the AppDir into ./squashfs-root\n\
                 --appimage-extract-and-run ARGS...\n\
                 \x20                     extract into a temporary folder, run, remove it\n\
                 --appimage-offset     print where the SquashFS image starts\n\
                 --appimage-version    print this runtime's version"
            );
            return Ok(ExitCode::SUCCESS);
        }
        Some("--appimage-extract") => {
            let dir = PathBuf::from("squashfs-root");
            extract(&appimage, offset, &dir)?;
            println!("{}", dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        Some("--appimage-extract-and-run") => {
            args.remove(0);
            let base = std::env::var_os("TMPDIR")
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
            let appdir = base.join(format!("appimage_extracted_kiln_{}", std::process::id()));
            fs::remove_dir_all(&appdir).ok();
            let result = extract(&appimage, offset, &appdir).and_then(|()| {
                app_run(&appdir, &appimage, &argv0, &args)
                    .status()
                    .map_err(|e| format!("cannot start {}: {e}", appdir.join("AppRun").display()))
            });
            fs::remove_dir_all(&appdir).ok();
            let status = result?;
            return Ok(match status.code() {
                Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                None => ExitCode::FAILURE,
            });
        }
        _ => {}
    }
    let meta = fs::metadata(&appimage).map_err(|e| format!("{}: {e}", appimage.display()))?;
    let stamp = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let root = cache_root().ok_or("neither XDG_CACHE_HOME nor HOME is set")?;
    let appdir = root.join(format!("{}-{stamp}", meta.len()));
    if !appdir.join("AppRun").exists() {
        // Extract next to the final place, then rename: a half-extracted AppDir is never run.
        let partial = root.join(format!(".partial-{}", std::process::id()));
        fs::remove_dir_all(&partial).ok();
        if let Err(e) = extract(&appimage, offset, &partial) {
            fs::remove_dir_all(&partial).ok();
            return Err(e);
        }
        if fs::rename(&partial, &appdir).is_err() {
            // Another start extracted it first.
            fs::remove_dir_all(&partial).ok();
        }
    }
    let error = app_run(&appdir, &appimage, &argv0, &args).exec();
    Err(format!(
        "cannot start {}: {error}",
        appdir.join("AppRun").display()
    ))
}

/// The command that starts `AppRun` in `appdir` with `args` and the AppImage environment.
fn app_run(
    appdir: &Path,
    appimage: &Path,
    argv0: &OsString,
    args: &[OsString],
) -> std::process::Command {
    let owd = std::env::current_dir().unwrap_or_default();
    let mut command = std::process::Command::new(appdir.join("AppRun"));
    command
        .args(args)
        .env("APPIMAGE", appimage)
        .env("APPDIR", appdir)
        .env("ARGV0", argv0)
        .env("OWD", owd);
    command
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kiln AppImage: {e}");
            ExitCode::FAILURE
        }
    }
}
