import CCodecs
import Glibc
import Synchronization

/// The decoders of codestreams from outside (JPEG through DCMTK, JPEG-LS, JPEG 2000, HTJ2K) run in helper
/// processes: the codec libraries trust what they parse (OpenJPH asserts, CharLS spins, OpenJPEG allocates what a
/// crafted header declares), and in a helper a crash, a failed assertion, a spin or a leak costs one frame and the
/// helper, never the engine. A helper is the same executable started in its helper mode (`CodecHelperServer`); the
/// frame and the decoded samples travel through a shared memory region, the request and the answer through a
/// socket pair. Each call runs under a CPU limit (`RLIMIT_CPU`) and an address-space limit (`RLIMIT_AS`) that the
/// helper sets on itself from the request, and under a wall-clock deadline the engine keeps; a helper that died, ran
/// out its time or grew past `retainedBytes` is replaced.
///
/// The engine's own fresh HTJ2K encode and its verifying decode stay in-process (`Codecs`): their input is ours.
public final class CodecHelperPool: Sendable {
    public struct Configuration: Sendable {
        /// The executable started as a helper, with `arguments`.
        public var executable: String
        public var arguments: [String]
        /// CPU seconds one frame's decode may use, plus a second per 4 MiB of decoded samples: far more than any of
        /// the libraries needs on a real frame, far less than a crafted one can make them spin.
        public var cpuSeconds: Double
        /// Helpers kept waiting for the next frame (more are started while more threads decode at once).
        public var maximumIdle: Int

        public init(executable: String, arguments: [String] = ["codec-helper"], cpuSeconds: Double = 2, maximumIdle: Int = 8) {
            self.executable = executable
            self.arguments = arguments
            self.cpuSeconds = cpuSeconds
            self.maximumIdle = maximumIdle
        }

        /// `$DICOM_INGEST_CODEC_HELPER`, else this executable when it is `dicom-ingest`, else a `dicom-ingest` beside
        /// it (how the test bundle, built next to the CLI, finds it).
        public static func standard() -> Configuration {
            if let path = getenv("DICOM_INGEST_CODEC_HELPER").map({ String(cString: $0) }), !path.isEmpty {
                return Configuration(executable: path)
            }
            let own = ownExecutable()
            if own.hasSuffix("/dicom-ingest") { return Configuration(executable: own) }
            let folder = own.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            return Configuration(executable: folder + "/dicom-ingest")
        }

        private static func ownExecutable() -> String {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
            guard count > 0 else { return "" }
            return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// What a helper decodes.
    enum Operation: UInt64 {
        case jpeg = 1
        case jpegYBR = 2
        case jpegLS = 3
        case jpeg2000 = 4
        /// HTJ2K from outside: OpenJPEG's checks first, then OpenJPH's samples (see `FrameProcessor`).
        case htj2k = 5

        var codecName: String {
            switch self {
            case .jpeg, .jpegYBR: return "JPEG"
            case .jpegLS: return "JPEG-LS"
            case .jpeg2000: return "JPEG 2000"
            case .htj2k: return "HTJ2K"
            }
        }
    }

    /// A helper whose resident memory grew past this after a frame is replaced (a decoder that leaks on some
    /// input cannot grow a helper for ever).
    static let retainedBytes = 96 << 20
    /// A region grown past this for a large frame is shrunk back after it.
    static let retainedRegionBytes = 16 << 20

    public let configuration: Configuration
    private let idle = Mutex<[CodecHelperProcess]>([])
    private let started = Atomic<Int>(0)

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    deinit {
        for helper in idle.withLock({ $0 }) { helper.stop() }
    }

    private static let sharedPool = Mutex<CodecHelperPool?>(nil)

    /// The process's pool; `configure` replaces it (before the first frame, or in tests).
    public static var shared: CodecHelperPool {
        sharedPool.withLock { pool in
            if let pool { return pool }
            let made = CodecHelperPool(configuration: .standard())
            pool = made
            return made
        }
    }

    public static func configure(_ configuration: Configuration) {
        sharedPool.withLock { $0 = CodecHelperPool(configuration: configuration) }
    }

    /// Helpers started since the pool was made (each crash or replacement starts one more).
    public var helpersStarted: Int { started.load(ordering: .relaxed) }

    /// The process IDs of the helpers waiting for work (for tests that kill one).
    public var idleHelperIDs: [Int32] { idle.withLock { $0.map(\.pid) } }

    /// Bytes a helper may take beyond its size at rest for a frame of `samples` samples: the libraries keep each
    /// sample as a 32-bit integer once or twice (OpenJPEG's image and tile buffers) plus code-block and
    /// bit-stream state; the memory budget reserves this, the shared region and the engine's own buffers.
    public static func decoderAllowance(decodedBytes: Int) -> Int {
        12 * decodedBytes + (48 << 20)
    }

    /// Bytes a frame's decode through a helper holds, for the memory budget: the shared region (the frame and its
    /// samples) and the decoder's allowance.
    public static func frameMemory(encodedBytes: Int, decodedBytes: Int) -> Int {
        encodedBytes + decodedBytes + decoderAllowance(decodedBytes: decodedBytes)
    }

    /// CPU seconds a decode of `decodedBytes` may use.
    func cpuAllowance(decodedBytes: Int) -> Double {
        configuration.cpuSeconds + Double(decodedBytes) / Double(4 << 20)
    }

    /// Decodes `input` in a helper into `output` (the codec's own sample width, as `Codecs` decoders write).
    func decode(
        _ operation: Operation, _ input: UnsafeRawBufferPointer, skipResolutions: Int = 0,
        into output: UnsafeMutableRawBufferPointer
    ) throws(PixelError) -> (Codecs.Image, Int) {
        let cpu = cpuAllowance(decodedBytes: output.count)
        var outcome = CodecHelperProcess.Outcome.unreachable("no helper")
        var helper: CodecHelperProcess
        // A helper that died while it waited (killed from outside) cannot take the frame: one more, fresh, can.
        var attempts = 0
        repeat {
            attempts += 1
            helper = try checkout()
            outcome = helper.decode(
                operation, input, skipResolutions: skipResolutions, into: output, cpuSeconds: cpu,
                memoryAllowance: Self.decoderAllowance(decodedBytes: output.count), deadlineSeconds: 4 * cpu + 10)
            if case .unreachable = outcome { helper.stop() } else { break }
        } while attempts < 2
        switch outcome {
        case .decoded(let image, let written, let residentBytes):
            checkin(helper, residentBytes: residentBytes)
            return (image, written)
        case .refused(let message, let residentBytes):
            checkin(helper, residentBytes: residentBytes)
            let lowered = message.lowercased()
            guard lowered.contains("memory") || lowered.contains("bad_alloc") else { throw PixelError(.decode, message) }
            let bound = Self.decoderAllowance(decodedBytes: output.count) >> 20
            throw PixelError(.decode, "\(message) (the decoder may take \(bound) MiB for this frame)")
        case .died(let message):
            helper.stop()
            throw PixelError(.decode, "\(operation.codecName): \(message)")
        case .broken(let message), .unreachable(let message):
            helper.stop()
            throw PixelError(.helper, "the \(operation.codecName) decoder's helper process failed: \(message)")
        }
    }

    private func checkout() throws(PixelError) -> CodecHelperProcess {
        if let helper = idle.withLock({ $0.popLast() }) { return helper }
        started.add(1, ordering: .relaxed)
        do {
            return try CodecHelperProcess.start(configuration)
        } catch {
            throw PixelError(.helper, "cannot start a codec helper (\(configuration.executable)): \(error.message)")
        }
    }

    private func checkin(_ helper: CodecHelperProcess, residentBytes: Int) {
        guard residentBytes <= Self.retainedBytes else {
            helper.stop()
            return
        }
        helper.shrinkRegion(to: Self.retainedRegionBytes)
        let kept = idle.withLock { helpers in
            guard helpers.count < configuration.maximumIdle else { return false }
            helpers.append(helper)
            return true
        }
        if !kept { helper.stop() }
    }
}

/// The wire between the engine and a helper: fixed-size little-endian words, so nothing is parsed.
enum CodecHelperWire {
    /// operation, skipResolutions, regionBytes, inputLength, outputOffset, outputCapacity, memoryAllowance,
    /// cpuSeconds (whole seconds, rounded up).
    static let requestWords = 8
    /// status (0 decoded, 1 refused), width, height, components, bitsStored, isSigned, written, residentBytes,
    /// messageLength; then the message's UTF-8 bytes.
    static let responseWords = 9
    static let maximumMessageBytes = 1024
    /// The file descriptor a helper finds its shared region at (0 and 1 are the socket, 2 its error log).
    static let regionDescriptor: Int32 = 3
}

/// One helper process, used by one thread at a time (the pool hands it out and takes it back).
final class CodecHelperProcess: @unchecked Sendable {
    enum Outcome {
        case decoded(Codecs.Image, Int, residentBytes: Int)
        /// The decoder reported the frame invalid (its message names the codec); the helper is fine.
        case refused(String, residentBytes: Int)
        /// The helper died on the frame or ran out its time: the frame's fault.
        case died(String)
        /// The helper broke the protocol or its region could not be made: ours.
        case broken(String)
        /// The helper had gone before it took the frame.
        case unreachable(String)
    }

    let pid: pid_t
    private let socket: Int32
    private let region: Int32
    private let log: Int32
    private var mapping: UnsafeMutableRawPointer?
    private var mappedBytes = 0
    private var stopped = false

    private init(pid: pid_t, socket: Int32, region: Int32, log: Int32) {
        self.pid = pid
        self.socket = socket
        self.region = region
        self.log = log
    }

    struct StartError: Error {
        var message: String
    }

    static func start(_ configuration: CodecHelperPool.Configuration) throws(StartError) -> CodecHelperProcess {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw StartError(message: "socketpair: \(String(cString: strerror(errno)))")
        }
        let region = anonymousFile()
        let log = anonymousFile()
        guard region >= 0, log >= 0 else {
            for descriptor in [pair[0], pair[1], region, log] where descriptor >= 0 { close(descriptor) }
            throw StartError(message: "shared memory: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pair[1], 0)
        posix_spawn_file_actions_adddup2(&actions, pair[1], 1)
        posix_spawn_file_actions_adddup2(&actions, log, 2)
        posix_spawn_file_actions_adddup2(&actions, region, CodecHelperWire.regionDescriptor)
        let argv = ([configuration.executable] + configuration.arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        // One malloc arena: the address-space limit then bounds what the decoder allocates, not reservations. No
        // Swift backtracer: a helper that dies should die at once, its last line the reason (a failed assertion).
        let own = ["MALLOC_ARENA_MAX=1", "SWIFT_BACKTRACE=enable=no"]
        var environment = own
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            if !own.contains(where: { text.hasPrefix($0.prefix { $0 != "=" } + "=") }) { environment.append(text) }
            index += 1
        }
        let envp = environment.map { strdup($0) } + [nil]
        defer { for entry in envp { free(entry) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, configuration.executable, &actions, nil, argv, envp)
        close(pair[1])
        guard status == 0 else {
            for descriptor in [pair[0], region, log] { close(descriptor) }
            throw StartError(message: String(cString: strerror(status)))
        }
        return CodecHelperProcess(pid: pid, socket: pair[0], region: region, log: log)
    }

    /// A memory file no path names (`memfd_create` semantics through `shm_open` and `shm_unlink`).
    private static func anonymousFile() -> Int32 {
        let counter = nextName.add(1, ordering: .relaxed).newValue
        let name = "/dicom-ingest-codec-\(getpid())-\(counter)"
        let descriptor = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if descriptor >= 0 { shm_unlink(name) }
        return descriptor
    }

    private static let nextName = Atomic<Int>(0)

    func decode(
        _ operation: CodecHelperPool.Operation, _ input: UnsafeRawBufferPointer, skipResolutions: Int,
        into output: UnsafeMutableRawBufferPointer, cpuSeconds: Double, memoryAllowance: Int, deadlineSeconds: Double
    ) -> Outcome {
        let outputOffset = (input.count + 4095) & ~4095
        let needed = outputOffset + output.count
        if let problem = ensureRegion(needed) { return .broken(problem) }
        guard let mapping else { return .broken("no shared region") }
        if let base = input.baseAddress, input.count > 0 { mapping.copyMemory(from: base, byteCount: input.count) }
        let request: [UInt64] = [
            operation.rawValue, UInt64(skipResolutions), UInt64(mappedBytes), UInt64(input.count), UInt64(outputOffset),
            UInt64(output.count), UInt64(memoryAllowance), UInt64(cpuSeconds.rounded(.up)),
        ]
        let pin = HandOffPin(helper: pid)
        defer { pin.release() }
        let sent = request.withUnsafeBytes { bytes in
            send(socket, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count
        }
        guard sent else { return .unreachable("the helper has gone: \(String(cString: strerror(errno)))") }
        let deadline = Self.now() + deadlineSeconds
        var words = [UInt64](repeating: 0, count: CodecHelperWire.responseWords)
        let header = words.withUnsafeMutableBytes { receive(into: $0, deadline: deadline) }
        switch header {
        case .timedOut:
            kill(pid, SIGKILL)
            return .died("the decoder took longer than \(Int(deadlineSeconds)) s on this frame and was stopped")
        case .closed: return died(after: "decoding", cpuSeconds: cpuSeconds)
        case .received: break
        }
        let messageLength = min(Int(words[8]), CodecHelperWire.maximumMessageBytes)
        var message = [UInt8](repeating: 0, count: messageLength)
        if messageLength > 0 {
            guard case .received = message.withUnsafeMutableBytes({ receive(into: $0, deadline: deadline) }) else {
                return died(after: "answering", cpuSeconds: cpuSeconds)
            }
        }
        let residentBytes = Int(words[7])
        guard words[0] == 0 else {
            return .refused(String(decoding: message, as: UTF8.self), residentBytes: residentBytes)
        }
        let written = Int(words[6])
        guard written <= output.count, let target = output.baseAddress else {
            return .broken("the helper wrote \(written) bytes into \(output.count)")
        }
        target.copyMemory(from: mapping + outputOffset, byteCount: written)
        let image = Codecs.Image(
            width: Int(words[1]), height: Int(words[2]), components: Int(words[3]), bitsStored: Int(words[4]),
            isSigned: words[5] != 0)
        return .decoded(image, written, residentBytes: residentBytes)
    }

    /// Why the helper ended while it had the frame: its exit, its signal, and the last line it wrote (a failed
    /// assertion's text).
    private func died(after step: String, cpuSeconds: Double) -> Outcome {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        stopped = true
        let signal = status & 0x7f
        let lastLine = lastLogLine()
        let said = lastLine.isEmpty ? "" : " (\(lastLine))"
        if signal == SIGXCPU {
            return .died("the decoder used more than \(Int(cpuSeconds.rounded(.up))) s of CPU on this frame and was stopped")
        }
        if signal == SIGABRT, !lastLine.isEmpty {
            return .died("the decoder failed an internal check\(said)")
        }
        if signal != 0 {
            return .died("the decoder's process died of signal \(signal) (\(Self.signalName(signal))) while \(step) this frame\(said)")
        }
        return .died("the decoder's process exited with status \((status >> 8) & 0xff) while \(step) this frame\(said)")
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGABRT: return "SIGABRT"
        case SIGSEGV: return "SIGSEGV"
        case SIGBUS: return "SIGBUS"
        case SIGFPE: return "SIGFPE"
        case SIGILL: return "SIGILL"
        case SIGKILL: return "SIGKILL"
        case SIGTRAP: return "SIGTRAP"
        case SIGXCPU: return "SIGXCPU"
        default: return "signal \(signal)"
        }
    }

    private func lastLogLine() -> String {
        var info = stat()
        guard fstat(log, &info) == 0, info.st_size > 0 else { return "" }
        let count = Int(min(info.st_size, 600))
        var bytes = [UInt8](repeating: 0, count: count)
        let got = bytes.withUnsafeMutableBytes { pread(log, $0.baseAddress, count, off_t(Int(info.st_size) - count)) }
        guard got > 0 else { return "" }
        let text = String(decoding: bytes[0..<got], as: UTF8.self)
        let line = text.split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
        return String(line.suffix(300))
    }

    private enum Received { case received, closed, timedOut }

    private func receive(into buffer: UnsafeMutableRawBufferPointer, deadline: Double) -> Received {
        var filled = 0
        while filled < buffer.count {
            let remaining = deadline - Self.now()
            guard remaining > 0 else { return .timedOut }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(remaining * 1000, 60_000).rounded(.up)))
            if ready < 0 {
                if errno == EINTR { continue }
                return .closed
            }
            if ready == 0 { continue }
            let got = recv(socket, buffer.baseAddress! + filled, buffer.count - filled, 0)
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { return .closed }
            filled += got
        }
        return .received
    }

    private static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// Grows the shared region (and this side's mapping) to at least `bytes`; nil on success.
    private func ensureRegion(_ bytes: Int) -> String? {
        guard bytes > mappedBytes || mapping == nil else { return nil }
        let size = max(bytes, 1 << 20)
        return remap(size)
    }

    func shrinkRegion(to bytes: Int) {
        guard mappedBytes > bytes else { return }
        _ = remap(bytes)
    }

    private func remap(_ size: Int) -> String? {
        if let mapping { munmap(mapping, mappedBytes) }
        mapping = nil
        mappedBytes = 0
        guard ftruncate(region, off_t(size)) == 0 else { return "cannot size the shared region: \(String(cString: strerror(errno)))" }
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, region, 0)
        guard let mapped, mapped != MAP_FAILED else { return "cannot map the shared region: \(String(cString: strerror(errno)))" }
        mapping = mapped
        mappedBytes = size
        return nil
    }

    /// Ends the helper (closing its socket ends its loop; a helper stuck in a frame is killed) and reaps it.
    func stop() {
        if let mapping { munmap(mapping, mappedBytes) }
        mapping = nil
        close(socket)
        close(region)
        close(log)
        guard !stopped else { return }
        stopped = true
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}

/// Keeps the calling thread and its helper on the thread's CPU for one request. A request is a synchronous
/// hand-off: the thread sleeps until the helper answers. Woken on the CPU this thread is giving up, the helper does
/// not preempt another thread elsewhere while this CPU idles, and its answer wakes this thread where it ran. Unpinned,
/// the scheduler of a two-core machine parted them on most frames, leaving a CPU idle for milliseconds a time (an
/// import of JPEG lossless slices took 1.22 times as long as decoding in-process, 1.06 times pinned; BENCHMARKS.md
/// "Codec helpers"). Where a mask cannot be set nothing is pinned; the helper's mask is set again by each request.
private struct HandOffPin {
    private var ownMask = CCodecs_CPUMask()
    private var pinned = false

    init(helper: pid_t) {
        let cpu = CCodecs_currentCPU()
        guard cpu >= 0, CCodecs_getAffinity(&ownMask) == 0, CCodecs_pinToCPU(helper, cpu) == 0 else { return }
        pinned = CCodecs_pinToCPU(0, cpu) == 0
    }

    func release() {
        guard pinned else { return }
        var mask = ownMask
        _ = CCodecs_setAffinity(&mask)
    }
}

/// A helper's side: `dicom-ingest codec-helper` runs this loop until the engine closes the socket.
public enum CodecHelperServer {
    /// Serves requests until the engine goes. Call it on the main thread: the engine pins a helper to a CPU by its
    /// process ID (`HandOffPin`), which names the main thread.
    public static func run() -> Never {
        // The CPU limit ends a call with SIGXCPU, which must reach this thread: the thread an async `main` runs on
        // blocks most signals (libdispatch's main queue does), and a blocked SIGXCPU lets a decoder spin for ever.
        var nothing = sigset_t()
        sigemptyset(&nothing)
        pthread_sigmask(SIG_SETMASK, &nothing, nil)
        closeInheritedDescriptors()
        setSoftLimit(RLIMIT_CORE, 0)
        Codecs.bootstrap()
        // The helper's size after one call is its size at the start of the next, unless the region is mapped again.
        var size = statm()
        var mapping: UnsafeMutableRawPointer?
        var mappedBytes = 0
        var request = [UInt64](repeating: 0, count: CodecHelperWire.requestWords)
        while true {
            guard request.withUnsafeMutableBytes({ readExactly(0, $0) }) else { exit(0) }
            let regionBytes = Int(request[2])
            if regionBytes != mappedBytes {
                if let mapping { munmap(mapping, mappedBytes) }
                let mapped = mmap(nil, regionBytes, PROT_READ | PROT_WRITE, MAP_SHARED, CodecHelperWire.regionDescriptor, 0)
                guard let mapped, mapped != MAP_FAILED else { exit(3) }
                mapping = mapped
                mappedBytes = regionBytes
                size = statm()
            }
            guard let base = mapping, let operation = CodecHelperPool.Operation(rawValue: request[0]),
                Int(request[3]) <= regionBytes, Int(request[4]) + Int(request[5]) <= regionBytes
            else { exit(4) }
            // The error log keeps only this frame's lines (the last one names a failed assertion).
            ftruncate(2, 0)
            lseek(2, 0, SEEK_SET)
            let input = UnsafeRawBufferPointer(start: base, count: Int(request[3]))
            let output = UnsafeMutableRawBufferPointer(start: base + Int(request[4]), count: Int(request[5]))
            limit(cpuSeconds: request[7], addressSpace: size.addressSpace, memoryAllowance: Int(request[6]))
            let result: Result<(Codecs.Image, Int), PixelError>
            do throws(PixelError) {
                result = .success(try decode(operation, input, skipResolutions: Int(request[1]), into: output))
            } catch {
                result = .failure(error)
            }
            unlimitMemory()
            var words = [UInt64](repeating: 0, count: CodecHelperWire.responseWords)
            var message: [UInt8] = []
            switch result {
            case .success(let (image, written)):
                words[1] = UInt64(image.width)
                words[2] = UInt64(image.height)
                words[3] = UInt64(image.components)
                words[4] = UInt64(image.bitsStored)
                words[5] = image.isSigned ? 1 : 0
                words[6] = UInt64(written)
            case .failure(let error):
                words[0] = 1
                message = Array(error.message.utf8.prefix(CodecHelperWire.maximumMessageBytes))
            }
            size = statm()
            words[7] = UInt64(size.resident)
            words[8] = UInt64(message.count)
            guard words.withUnsafeBytes({ writeAll(1, $0) }), message.withUnsafeBytes({ writeAll(1, $0) }) else { exit(0) }
        }
    }

    /// Nothing of the engine's (sockets, a job's lock, catalog files) may live on in a helper: every descriptor
    /// past the region, which another thread of the engine opened without close-on-exec as the helper started, is
    /// closed.
    private static func closeInheritedDescriptors() {
        guard let folder = opendir("/proc/self/fd") else { return }
        var open: [Int32] = []
        while let entry = readdir(folder) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let descriptor = Int32(name), descriptor > CodecHelperWire.regionDescriptor { open.append(descriptor) }
        }
        let listing = dirfd(folder)
        closedir(folder)
        for descriptor in open where descriptor != listing { close(descriptor) }
    }

    /// The in-process decoders, as the helper runs them; their messages name the codec.
    private static func decode(
        _ operation: CodecHelperPool.Operation, _ input: UnsafeRawBufferPointer, skipResolutions: Int,
        into output: UnsafeMutableRawBufferPointer
    ) throws(PixelError) -> (Codecs.Image, Int) {
        switch operation {
        case .jpeg, .jpegYBR: return try Codecs.decodeJPEG(input, convertYBR: operation == .jpegYBR, into: output)
        case .jpegLS: return try Codecs.decodeJPEGLS(input, into: output)
        case .jpeg2000: return try Codecs.decodeJPEG2000(input, skipResolutions: skipResolutions, into: output)
        case .htj2k:
            // OpenJPH 0.9 trusts packet headers and writes past its buffers on crafted ones
            // (Fuzz/regressions/instance/htj2k-openjph-precinct-overflow.dcm); OpenJPEG 2.5 checks them but
            // mis-decodes signed 16-bit HTJ2K. So HTJ2K from outside is decoded by OpenJPEG first, as a gate, then
            // by OpenJPH for its samples.
            _ = try Codecs.decodeIncomingHTJ2K(input, into: output)
            return try Codecs.decodeHTJ2K(input, skipResolutions: skipResolutions, into: output)
        }
    }

    /// This call's CPU: what the helper has used so far plus the allowance (the kernel sends SIGXCPU past it);
    /// its address space: what is mapped now plus the allowance (allocations past it fail).
    private static func limit(cpuSeconds: UInt64, addressSpace: Int, memoryAllowance: Int) {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let used = UInt64(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + 1
        setSoftLimit(RLIMIT_CPU, rlim_t(used + max(1, cpuSeconds)))
        setSoftLimit(RLIMIT_AS, rlim_t(addressSpace + memoryAllowance))
    }

    private static func unlimitMemory() {
        setSoftLimit(RLIMIT_AS, rlim_t.max)
    }

    /// Sets a soft limit, up to the hard one (which a process without privileges can lower but never raise).
    private static func setSoftLimit(_ resource: __rlimit_resource, _ value: rlim_t) {
        let which = __rlimit_resource_t(resource.rawValue)
        var limit = rlimit()
        guard getrlimit(which, &limit) == 0 else { return }
        limit.rlim_cur = min(value, limit.rlim_max)
        setrlimit(which, &limit)
    }

    /// The first two fields of `/proc/self/statm`, in bytes: the address space and the resident set.
    private static func statm() -> (addressSpace: Int, resident: Int) {
        let descriptor = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return (0, 0) }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 128)
        let got = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard got > 0 else { return (0, 0) }
        let fields = bytes[0..<got].split(separator: UInt8(ascii: " ")).prefix(2).map { Int(String(decoding: $0, as: UTF8.self)) ?? 0 }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        return (fields.first.map { $0 * page } ?? 0, fields.count > 1 ? fields[1] * page : 0)
    }

    private static func readExactly(_ descriptor: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        var filled = 0
        while filled < buffer.count {
            let got = read(descriptor, buffer.baseAddress! + filled, buffer.count - filled)
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { return false }
            filled += got
        }
        return true
    }

    private static func writeAll(_ descriptor: Int32, _ buffer: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < buffer.count {
            let wrote = write(descriptor, buffer.baseAddress! + done, buffer.count - done)
            if wrote < 0 && errno == EINTR { continue }
            guard wrote > 0 else { return false }
            done += wrote
        }
        return true
    }
}
