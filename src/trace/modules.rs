//! The loaded modules and their unwind tables, as framehop wants them.
//!
//! `dl_iterate_phdr` lists every loaded object with its program headers;
//! `PT_GNU_EH_FRAME` locates `.eh_frame_hdr` (a sorted table of the
//! functions' unwind entries), whose `eh_frame_ptr` locates `.eh_frame`.
//! Both are used in place, as mapped: the slices are `'static` for as long
//! as the module stays loaded (a library unloaded during a dump would make
//! the walk read unmapped memory; coio itself never unloads anything).

use std::ffi::CStr;
use std::ops::Range;

use framehop::x86_64::UnwinderX86_64;
use framehop::{ExplicitModuleSectionInfo, Module, MustNotAllocateDuringUnwind};

/// What a walk needs: every module's unwind tables. Built in normal
/// context (it allocates); used anywhere, signal handlers included.
pub(crate) struct Unwinder {
    inner: UnwinderX86_64<&'static [u8], MustNotAllocateDuringUnwind>,
    /// The same modules, for naming addresses.
    pub(crate) modules: Vec<ModuleInfo>,
}

/// A loaded module, for [`Symbolizer`](super::Symbolizer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ModuleInfo {
    /// Its file (empty if it has none, as the vDSO).
    pub(crate) path: String,
    /// Load bias: an address in memory is the file's address plus this.
    pub(crate) bias: u64,
    /// Its code, as mapped.
    pub(crate) text: Range<u64>,
}

impl Unwinder {
    /// Lists the loaded modules now.
    pub(crate) fn load() -> Unwinder {
        let mut found = Found::default();
        // SAFETY: `collect` has the callback's signature and only reads what
        // the loader passes it; `found` outlives the call.
        unsafe { libc::dl_iterate_phdr(Some(collect), (&raw mut found).cast()) };
        let mut inner = UnwinderX86_64::new();
        for m in found.framehop {
            framehop::Unwinder::add_module(&mut inner, m);
        }
        Unwinder {
            inner,
            modules: found.modules,
        }
    }

    /// framehop's step: the caller's return address, or None at the root.
    #[inline]
    pub(super) fn unwind_frame(
        &self,
        addr: framehop::FrameAddress,
        regs: &mut framehop::x86_64::UnwindRegsX86_64,
        cache: &mut super::Cache,
        read: &mut impl FnMut(u64) -> Result<u64, ()>,
    ) -> Result<Option<u64>, framehop::Error> {
        framehop::Unwinder::unwind_frame(&self.inner, addr, regs, cache, read)
    }
}

#[derive(Default)]
struct Found {
    framehop: Vec<Module<&'static [u8]>>,
    modules: Vec<ModuleInfo>,
}

/// Reads `eh_frame_ptr` from `.eh_frame_hdr` (only the encodings linkers
/// use on x86_64: pc-relative, 4 or 8 bytes signed).
///
/// # Safety
/// `p` must point at the mapped field, 4 or 8 readable bytes.
unsafe fn read_eh_frame_ptr(p: *const u8, encoding: u8) -> Option<u64> {
    // SAFETY: the caller's contract.
    unsafe {
        match encoding {
            0x1b => Some((p as i64 + i64::from(p.cast::<i32>().read_unaligned())) as u64),
            0x1c => Some((p as i64 + p.cast::<i64>().read_unaligned()) as u64),
            _ => None,
        }
    }
}

unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid `info`; `data` is the `Found` that
    // `Unwinder::load` passed, borrowed by nobody else meanwhile.
    let (info, found) = unsafe { (&*info, &mut *data.cast::<Found>()) };
    let bias = info.dlpi_addr;
    let name = if info.dlpi_name.is_null() {
        String::new()
    } else {
        // SAFETY: a NUL-terminated string of the loader's.
        unsafe { CStr::from_ptr(info.dlpi_name) }
            .to_string_lossy()
            .into_owned()
    };
    let headers: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
        &[]
    } else {
        // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers.
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
    };
    let mut text: Option<Range<u64>> = None;
    let mut hdr: Option<Range<u64>> = None;
    for h in headers {
        if h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_X != 0 {
            let r = h.p_vaddr..h.p_vaddr + h.p_memsz;
            text = Some(match text {
                None => r,
                Some(t) => t.start.min(r.start)..t.end.max(r.end),
            });
        }
        if h.p_type == libc::PT_GNU_EH_FRAME {
            hdr = Some(h.p_vaddr..h.p_vaddr + h.p_memsz);
        }
    }
    let Some(text) = text else { return 0 };
    // The executable has no name here; the vDSO has no file.
    let path = if name.is_empty() {
        std::fs::read_link("/proc/self/exe")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else if name.starts_with('/') {
        name.clone()
    } else {
        String::new()
    };
    let mut sections = ExplicitModuleSectionInfo::<&'static [u8]> {
        base_svma: 0,
        text_svma: Some(text.clone()),
        ..Default::default()
    };
    if let Some(hdr) = hdr
        && hdr.end - hdr.start >= 12
    {
        let at = (bias + hdr.start) as *const u8;
        // SAFETY: PT_GNU_EH_FRAME is mapped, at least 12 bytes (checked):
        // version, eh_frame_ptr's encoding, two more encodings, then
        // eh_frame_ptr, 4 or 8 bytes (an 8-byte one is read only if the
        // header says so, and then the table follows it).
        let eh = unsafe { read_eh_frame_ptr(at.add(4), *at.add(1)) };
        if let Some(eh) = eh {
            let eh_svma = eh.wrapping_sub(bias);
            // `.eh_frame`'s size is in no program header: it runs to the
            // end of the loaded segment holding it at most (entries are
            // reached through the header's table, never by scanning).
            let end = headers
                .iter()
                .filter(|h| h.p_type == libc::PT_LOAD)
                .find(|h| h.p_vaddr <= eh_svma && eh_svma < h.p_vaddr + h.p_filesz)
                .map(|h| h.p_vaddr + h.p_filesz);
            if let Some(end) = end {
                // SAFETY: both ranges lie in loaded segments of a module
                // that stays loaded (see the module docs).
                unsafe {
                    sections.eh_frame_hdr = Some(std::slice::from_raw_parts(
                        at,
                        (hdr.end - hdr.start) as usize,
                    ));
                    sections.eh_frame = Some(std::slice::from_raw_parts(
                        eh as *const u8,
                        (end - eh_svma) as usize,
                    ));
                }
                sections.eh_frame_hdr_svma = Some(hdr);
                sections.eh_frame_svma = Some(eh_svma..end);
            }
        }
    }
    let avma = bias + text.start..bias + text.end;
    found
        .framehop
        .push(Module::new(name, avma.clone(), bias, sections));
    found.modules.push(ModuleInfo {
        path,
        bias,
        text: avma,
    });
    0
}
