import Foundation
import Synchronization

/// A token bucket for request rates: `rate` tokens a second, at most `burst` saved up. One lock guards the state.
final class TokenBucket: Sendable {
    private struct State {
        var tokens: Double
        var updated: Double
    }

    private let rate: Double
    private let burst: Double
    private let state: Mutex<State>

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
        self.state = Mutex(State(tokens: burst, updated: Date().timeIntervalSince1970))
    }

    /// Takes a token if one is available.
    func take(now: Double = Date().timeIntervalSince1970) -> Bool {
        state.withLock { state in
            state.tokens = min(burst, state.tokens + (now - state.updated) * rate)
            state.updated = now
            guard state.tokens >= 1 else { return false }
            state.tokens -= 1
            return true
        }
    }
}
