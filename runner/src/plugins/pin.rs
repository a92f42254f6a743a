//! Pinned plugin libraries: `[plugins] sha256 = { "path/libx.so" = "<hex>" }` names the SHA-256
//! a library must have. A pinned library is hashed before it is opened, and refused on a mismatch
//! with both hashes shown, so none of its code runs. A pin is matched to a library by the file it
//! names (relative paths from the directory weir runs in), whether the library is listed in
//! `paths` itself or found in a listed directory.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The pins of a pipeline, each with whether a library matched it.
#[derive(Debug, Default)]
pub struct Pins {
    pins: Vec<Pin>,
}

#[derive(Debug)]
struct Pin {
    /// The key as written.
    key: String,
    /// The file it names, resolved (None when it does not exist).
    file: Option<PathBuf>,
    /// Lowercase hex.
    sha256: String,
    matched: bool,
}

/// Why a pinned library is refused, or a pin is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PinError {
    /// The pin is not 64 hex digits.
    #[error("`{value}` is not a SHA-256 (64 hex digits)")]
    NotAHash {
        /// The value as written.
        value: String,
    },
    /// The library's bytes hash to something else.
    #[error("refusing to load it: its SHA-256 is {actual}, but the pipeline pins {expected}")]
    Mismatch {
        /// The pinned hash.
        expected: String,
        /// The file's hash.
        actual: String,
    },
    /// The library could not be read to hash it.
    #[error("cannot read it to check its SHA-256: {0}")]
    Read(String),
}

impl Pins {
    /// Pins from `[plugins] sha256` entries; a malformed hash is an error at its key.
    pub fn new(entries: &[(String, String)]) -> (Pins, Vec<(String, PinError)>) {
        let mut pins = Vec::new();
        let mut errors = Vec::new();
        for (key, value) in entries {
            let sha256 = value.trim().to_ascii_lowercase();
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                errors.push((
                    key.clone(),
                    PinError::NotAHash {
                        value: value.clone(),
                    },
                ));
                continue;
            }
            pins.push(Pin {
                key: key.clone(),
                file: Path::new(key).canonicalize().ok(),
                sha256,
                matched: false,
            });
        }
        (Pins { pins }, errors)
    }

    /// Checks `file` against its pin, if it has one, before it is loaded.
    pub fn check(&mut self, file: &Path) -> Result<(), PinError> {
        let Ok(resolved) = file.canonicalize() else {
            return Ok(()); // loading reports a missing file
        };
        let Some(pin) = self
            .pins
            .iter_mut()
            .find(|p| p.file.as_deref() == Some(resolved.as_path()))
        else {
            return Ok(());
        };
        pin.matched = true;
        let actual = sha256_hex(&resolved).map_err(|e| PinError::Read(e.to_string()))?;
        if actual == pin.sha256 {
            Ok(())
        } else {
            Err(PinError::Mismatch {
                expected: pin.sha256.clone(),
                actual,
            })
        }
    }

    /// The keys of pins no library matched (a typo, or a library no longer listed).
    pub fn unmatched(&self) -> impl Iterator<Item = &str> {
        self.pins
            .iter()
            .filter(|p| !p.matched)
            .map(|p| p.key.as_str())
    }
}

/// The SHA-256 of the file at `path`, in lowercase hex.
pub fn sha256_hex(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_passes_its_file_and_refuses_any_other_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("libx.so");
        std::fs::write(&file, b"abc").unwrap();
        // SHA-256("abc"), a published test vector.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let key = file.display().to_string();
        let (mut pins, errors) = Pins::new(&[(key.clone(), abc.to_uppercase())]);
        assert!(errors.is_empty());
        assert_eq!(pins.check(&file), Ok(()));
        assert_eq!(pins.unmatched().count(), 0);
        std::fs::write(&file, b"abd").unwrap();
        match pins.check(&file) {
            Err(PinError::Mismatch { expected, actual }) => {
                assert_eq!(expected, abc);
                assert_ne!(actual, abc);
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        let (_, errors) = Pins::new(&[(key, "abc".into())]);
        assert_eq!(
            errors[0].1,
            PinError::NotAHash {
                value: "abc".into()
            }
        );
    }
}
