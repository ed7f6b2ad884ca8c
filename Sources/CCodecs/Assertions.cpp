#include "Common.hpp"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <pthread.h>
#include <unistd.h>
#include <sys/syscall.h>

thread_local sigjmp_buf *ccodecs::assertionTarget = nullptr;
thread_local char ccodecs::assertionText[256];

/// glibc's assertion handler, replaced for the whole process: the executable's definition takes precedence over
/// libc's for every shared library. Inside a `ccodecs::guarded` call it returns to the shim with the failure;
/// anywhere else it reports and aborts as glibc's does.
extern "C" void __assert_fail(const char *assertion, const char *file, unsigned int line, const char *function) noexcept {
    if (sigjmp_buf *target = ccodecs::assertionTarget) {
        std::snprintf(ccodecs::assertionText, sizeof ccodecs::assertionText, "%s:%u: %s", file, line, assertion);
        siglongjmp(*target, 1);
    }
    std::fprintf(stderr, "%s:%u: %s: Assertion `%s' failed.\n", file, line, function, assertion);
    std::abort();
}

namespace {

std::atomic<double> callCPULimit{2};

/// The real-time signal the watchdog timers send; no other part of the process uses it.
int watchdogSignal() { return SIGRTMIN + 5; }

/// Jumps out of the codec call this thread is in; a late signal (the call ended as the timer fired) is ignored.
void onWatchdog(int) {
    if (sigjmp_buf *target = ccodecs::assertionTarget) siglongjmp(*target, 2);
}

void installWatchdogHandler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction action {};
        action.sa_handler = onWatchdog;
        sigemptyset(&action.sa_mask);
        sigaction(watchdogSignal(), &action, nullptr);
    });
}

}  // namespace

extern "C" void CCodecs_setCallCPULimit(double seconds) { callCPULimit.store(seconds > 0 ? seconds : 2); }
extern "C" double CCodecs_callCPULimit(void) { return callCPULimit.load(); }

namespace {
thread_local timer_t watchdogTimer;
thread_local bool watchdogArmed = false;
/// The thread's signal mask before the call: Dispatch's threads block most signals, the watchdog's included.
thread_local sigset_t maskBeforeCall;

sigset_t watchdogSet() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, watchdogSignal());
    return set;
}
}  // namespace

void ccodecs::armWatchdog(double limit) {
    installWatchdogHandler();
    struct sigevent event {};
    event.sigev_notify = SIGEV_THREAD_ID;
    event.sigev_signo = watchdogSignal();
    event._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    if (timer_create(CLOCK_THREAD_CPUTIME_ID, &event, &watchdogTimer) != 0) return;
    struct itimerspec when {};
    when.it_value.tv_sec = (time_t)limit;
    when.it_value.tv_nsec = (long)((limit - (double)(time_t)limit) * 1e9);
    if (timer_settime(watchdogTimer, 0, &when, nullptr) != 0) {
        timer_delete(watchdogTimer);
        return;
    }
    const sigset_t set = watchdogSet();
    pthread_sigmask(SIG_UNBLOCK, &set, &maskBeforeCall);
    watchdogArmed = true;
}

void ccodecs::disarmWatchdog() {
    if (!watchdogArmed) return;
    timer_delete(watchdogTimer);
    watchdogArmed = false;
    pthread_sigmask(SIG_SETMASK, &maskBeforeCall, nullptr);
    // A signal the timer sent as the call ended stays pending while blocked; take it now, or the next call on
    // this thread would be stopped the moment it unblocks the signal.
    if (sigismember(&maskBeforeCall, watchdogSignal()) == 1) {
        const sigset_t set = watchdogSet();
        const struct timespec now {};
        while (sigtimedwait(&set, nullptr, &now) > 0) {}
    }
}
