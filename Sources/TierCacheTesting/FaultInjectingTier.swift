public import TierCache

/// Wraps a tier and injects faults: errors, delays (that may ignore cancellation, like a stuck
/// socket), and corrupted reads. Faults can be changed while a test runs. Reads can also be held
/// after they have read the wrapped tier (``holdReads()``), to order a read around other
/// operations deterministically.
public final class FaultInjectingTier: CacheTier, @unchecked Sendable {
    /// One kind of misbehaviour.
    public enum Fault: Sendable, Equatable {
        /// Operations succeed.
        case none
        /// Operations throw a storage error.
        case fail
        /// Operations wait this long first, honouring cancellation.
        case delay(Duration)
        /// Operations block this long first, ignoring cancellation (a hung dependency).
        case hang(Duration)
        /// Reads return the entry with one payload bit flipped and the envelope re-encoded, or,
        /// with `raw`, bytes that fail envelope decoding.
        case corrupt
    }

    /// The error a `.fail` fault throws.
    public struct InjectedError: Error, Sendable, Equatable {}

    public let base: any CacheTier
    public var name: String { base.name }
    private let lock = Lock()
    private var readFault: Fault = .none
    private var writeFault: Fault = .none
    private var holding = false
    private var held: [CheckedContinuation<Void, Never>] = []
    private var arrivalWaiters: [CheckedContinuation<Void, Never>] = []

    /// Wraps `base`.
    public init(_ base: any CacheTier) {
        self.base = base
    }

    /// Sets the fault for reads (`get`, `getMany`).
    public func setReadFault(_ fault: Fault) { lock.withLock { readFault = fault } }
    /// Sets the fault for writes (`put`, `remove`).
    public func setWriteFault(_ fault: Fault) { lock.withLock { writeFault = fault } }

    /// Makes reads (`get`) wait, once they have read the wrapped tier, until ``releaseReads()``.
    public func holdReads() { lock.withLock { holding = true } }

    /// Lets held reads return what they read, and stops holding new ones.
    public func releaseReads() {
        let waiting = lock.withLock {
            holding = false
            defer { held = [] }
            return held
        }
        for continuation in waiting { continuation.resume() }
    }

    /// Returns once at least one read is held (immediately if one already is).
    public func readHeld() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let already = lock.withLock {
                if !held.isEmpty { return true }
                arrivalWaiters.append(continuation)
                return false
            }
            if already { continuation.resume() }
        }
    }

    /// Reads held now.
    public var heldReads: Int { lock.withLock { held.count } }

    private func holdIfAsked() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let arrived: [CheckedContinuation<Void, Never>]? = lock.withLock {
                guard holding else { return nil }
                held.append(continuation)
                defer { arrivalWaiters = [] }
                return arrivalWaiters
            }
            guard let arrived else { return continuation.resume() }
            for waiter in arrived { waiter.resume() }
        }
    }

    private func apply(_ fault: Fault) async throws {
        switch fault {
        case .none, .corrupt: return
        case .fail: throw InjectedError()
        case .delay(let duration): try await Task.sleep(for: duration)
        case .hang(let duration):
            // Suspends without honouring cancellation: the sleep runs in a detached task, which the
            // caller's cancellation does not reach. (A loop of `try? await Task.sleep` would spin
            // once cancelled and starve the cooperative pool.)
            await withCheckedContinuation { continuation in
                Task.detached {
                    try? await Task.sleep(for: duration)
                    continuation.resume()
                }
            }
        }
    }

    public func get(_ key: CacheKey) async throws -> CacheEntry? {
        let fault = lock.withLock { readFault }
        try await apply(fault)
        let read = try await base.get(key)
        await holdIfAsked()
        guard var entry = read else { return nil }
        if fault == .corrupt {
            if entry.payload.isEmpty { entry.payload = [0xFF] } else { entry.payload[entry.payload.count / 2] ^= 0x10 }
        }
        return entry
    }

    public func put(_ entry: CacheEntry) async throws {
        try await apply(lock.withLock { writeFault })
        try await base.put(entry)
    }

    public func remove(_ key: CacheKey) async throws {
        try await apply(lock.withLock { writeFault })
        try await base.remove(key)
    }
}
