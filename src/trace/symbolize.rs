//! Naming addresses: function (inlined frames included) and `file:line`.

use std::collections::HashMap;
use std::sync::Arc;

use super::modules::ModuleInfo;

/// One frame at an address: a function, and where in it, if known.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Sym {
    /// Demangled, without the hash (`app::server::handle`).
    pub(crate) function: String,
    /// Source file and line, if the build kept line tables.
    pub(crate) file: Option<(String, u32)>,
}

/// Names addresses, each distinct one once. Kept across dumps.
#[derive(Default)]
pub(crate) struct Symbolizer {
    /// Modules seen, each with its debug info once opened (None inside:
    /// it could not be opened).
    modules: Vec<(ModuleInfo, Option<Option<addr2line::Loader>>)>,
    /// Lookup address -> frames, innermost (most inlined) first.
    names: HashMap<u64, Arc<[Sym]>>,
}

impl Symbolizer {
    /// Takes note of the modules loaded now (a dump's [`Unwinder`]).
    ///
    /// [`Unwinder`]: super::Unwinder
    pub(crate) fn update(&mut self, modules: &[ModuleInfo]) {
        let stale = self.modules.iter().any(|(m, _)| !modules.contains(m));
        if stale {
            // A module went away: what was named in it may name other code.
            self.modules.clear();
            self.names.clear();
        }
        for m in modules {
            if !self.modules.iter().any(|(k, _)| k == m) {
                self.modules.push((m.clone(), None));
            }
        }
    }

    /// The frames at lookup address `addr`, innermost first (never empty).
    pub(crate) fn name(&mut self, addr: u64) -> Arc<[Sym]> {
        if let Some(s) = self.names.get(&addr) {
            return s.clone();
        }
        let frames: Arc<[Sym]> = self.look_up(addr).into();
        self.names.insert(addr, frames.clone());
        frames
    }

    fn look_up(&mut self, addr: u64) -> Vec<Sym> {
        let unknown = |what: String| {
            vec![Sym {
                function: what,
                file: None,
            }]
        };
        let Some((m, loader)) = self
            .modules
            .iter_mut()
            .find(|(m, _)| m.text.contains(&addr))
        else {
            return unknown(format!("?? ({addr:#x})"));
        };
        let loader = loader.get_or_insert_with(|| {
            (!m.path.is_empty())
                .then(|| addr2line::Loader::new(&m.path).ok())
                .flatten()
        });
        // A module without a path is the vDSO (the kernel's page of
        // `clock_gettime` and friends).
        let file_name = match m.path.rsplit('/').next() {
            Some(name) if !name.is_empty() => name,
            _ => "[vdso]",
        };
        let probe = addr - m.bias;
        let Some(loader) = loader.as_ref() else {
            return unknown(format!("{file_name}+{probe:#x}"));
        };
        let mut out = Vec::new();
        if let Ok(mut frames) = loader.find_frames(probe) {
            while let Ok(Some(f)) = frames.next() {
                let function = f
                    .function
                    .as_ref()
                    .and_then(|n| n.raw_name().ok())
                    .map(|n| demangle(&n))
                    .unwrap_or_default();
                let file = f.location.and_then(|l| Some((l.file?.to_owned(), l.line?)));
                out.push(Sym { function, file });
            }
        }
        // The outermost frame is the real function: the symbol table has
        // its full path (DWARF with line tables only names it bare).
        let symbol = loader.find_symbol(probe).map(demangle);
        match out.last_mut() {
            Some(last) => {
                if let Some(s) = symbol {
                    last.function = s;
                }
            }
            None => out.push(Sym {
                function: symbol.unwrap_or_default(),
                file: None,
            }),
        }
        for s in &mut out {
            if s.function.is_empty() {
                s.function = format!("{file_name}+{probe:#x}");
            }
        }
        out
    }
}

/// A Rust symbol demangled without its hash; others as they are.
fn demangle(raw: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(raw))
}
