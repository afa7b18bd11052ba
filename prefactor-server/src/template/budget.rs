//! The budget of one render: a deadline, loop iterations and intermediate bytes left.
//!
//! Why a thread-local: `liquid` hands its blocks and filters only the runtime, whose
//! registers are created per render with `Default` values and cannot carry the server's
//! limits. A render runs start to end on one thread, so [`run`] installs the budget on that
//! thread for exactly the duration of the render (like minijinja's fuel, but counted in
//! iterations, bytes and time). Everything that can make a render slow or big draws from it:
//! the bounded loops, the filter wrapper, captures and the output writer.

use std::cell::RefCell;
use std::io;
use std::time::Instant;

use liquid_core::Error;

use super::limits::TemplateLimits;

struct Budget {
    deadline: Instant,
    iterations_left: u64,
    work_left: usize,
    /// Why the render was stopped, for the log.
    exceeded: Option<String>,
}

thread_local! {
    static BUDGET: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// Runs `render` with a fresh budget from `limits`; also returns why the budget stopped the
/// render, if it did.
pub(super) fn run<R>(limits: &TemplateLimits, render: impl FnOnce() -> R) -> (R, Option<String>) {
    let budget = Budget {
        deadline: Instant::now() + limits.max_render_time,
        iterations_left: limits.max_iterations,
        work_left: limits.max_work_bytes,
        exceeded: None,
    };
    let previous = BUDGET.with(|slot| slot.replace(Some(budget)));
    let result = render();
    let finished = BUDGET.with(|slot| slot.replace(previous));
    (result, finished.and_then(|budget| budget.exceeded))
}

/// Applies `spend` to the installed budget; the error names what ran out. Without a budget
/// (a template rendered outside [`run`]) nothing may be spent.
fn spend(spend: impl FnOnce(&mut Budget) -> Result<(), String>) -> Result<(), String> {
    BUDGET.with(|slot| {
        let mut slot = slot.borrow_mut();
        let Some(budget) = slot.as_mut() else {
            return Err("template rendered without a budget".to_string());
        };
        let result = spend(budget);
        if let Err(reason) = &result
            && budget.exceeded.is_none()
        {
            budget.exceeded = Some(reason.clone());
        }
        result
    })
}

fn time_left(budget: &mut Budget) -> Result<(), String> {
    if Instant::now() > budget.deadline { Err("render time budget exceeded".to_string()) } else { Ok(()) }
}

/// Fails once the render is past its deadline.
pub(super) fn check_time() -> Result<(), Error> {
    spend(time_left).map_err(Error::with_msg)
}

/// Takes `count` loop iterations (and checks the deadline).
pub(super) fn take_iterations(count: u64) -> Result<(), Error> {
    spend(|budget| {
        time_left(budget)?;
        budget.iterations_left = budget.iterations_left.checked_sub(count).ok_or_else(|| {
            format!("loop iteration budget exceeded ({count} more wanted, {} left)", budget.iterations_left)
        })?;
        Ok(())
    })
    .map_err(Error::with_msg)
}

/// Loop iterations left.
pub(super) fn iterations_left() -> u64 {
    BUDGET.with(|slot| slot.borrow().as_ref().map_or(0, |budget| budget.iterations_left))
}

/// Takes `bytes` of intermediate output (and checks the deadline).
pub(super) fn take_work(bytes: usize) -> Result<(), Error> {
    spend(|budget| {
        time_left(budget)?;
        budget.work_left = budget
            .work_left
            .checked_sub(bytes)
            .ok_or_else(|| format!("work budget exceeded ({bytes} more bytes wanted, {} left)", budget.work_left))?;
        Ok(())
    })
    .map_err(Error::with_msg)
}

/// Intermediate bytes left.
pub(super) fn work_left() -> usize {
    BUDGET.with(|slot| slot.borrow().as_ref().map_or(0, |budget| budget.work_left))
}

/// A writer that refuses to grow past `cap` bytes and stops at the deadline.
pub(super) struct BoundedWriter<W> {
    inner: W,
    written: usize,
    cap: usize,
}

impl<W: io::Write> BoundedWriter<W> {
    /// Wraps `inner`, accepting at most `cap` bytes.
    pub(super) fn new(inner: W, cap: usize) -> Self {
        BoundedWriter { inner, written: 0, cap }
    }

    /// Bytes written so far.
    pub(super) fn written(&self) -> usize {
        self.written
    }

    /// The wrapped writer.
    pub(super) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: io::Write> io::Write for BoundedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let cap = self.cap;
        let written = self.written;
        spend(|budget| {
            time_left(budget)?;
            match written.checked_add(buf.len()) {
                Some(total) if total <= cap => Ok(()),
                _ => Err(format!("output limit of {cap} bytes exceeded")),
            }
        })
        .map_err(io::Error::other)?;
        self.inner.write_all(buf)?;
        self.written += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
