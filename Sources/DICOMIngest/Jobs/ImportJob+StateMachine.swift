public import DICOMIngestModel

/// The import job namespace.
public enum ImportJob {}

extension ImportJob {
    /// The job lifecycle (spec §6) as a pure state machine: SUBMITTED → IN_PROGRESS → COMPLETED | FAILED.
    ///
    /// FAILED is only for job-level causes (input unreadable, output unwritable, store failure, quota); files that
    /// fail leave the job COMPLETED. Transitions return the action the owner performs after applying them.
    public struct StateMachine: Hashable, Sendable {
        public enum Action: Hashable, Sendable {
            /// Start the pipeline.
            case startPipeline
            /// Record the end time and persist the final status.
            case finish(JobStatus, message: String?)
            /// The event does not apply in the current state; nothing to do.
            case none
        }

        public private(set) var status: JobStatus = .submitted
        public private(set) var message: String?

        public init() {}

        /// Restores a machine in a persisted state (e.g. after a restart).
        public init(status: JobStatus, message: String? = nil) {
            self.status = status
            self.message = message
        }

        /// Starts a SUBMITTED job, or resumes one a stopped process left IN_PROGRESS.
        public mutating func start() -> Action {
            guard status == .submitted || status == .inProgress else { return .none }
            status = .inProgress
            return .startPipeline
        }

        /// `import --resume` of a FAILED job (a documented extension: HealthImaging never restarts one, and a
        /// repeated client token still answers FAILED): it runs again from what it had staged and recorded.
        public mutating func reopen() -> Action {
            guard status == .failed else { return .none }
            status = .inProgress
            message = nil
            return .startPipeline
        }

        /// Every object under the input prefix has a result line and the image sets are committed.
        public mutating func pipelineFinished() -> Action {
            guard status == .inProgress else { return .none }
            status = .completed
            return .finish(.completed, message: nil)
        }

        /// A job-level failure; the message must fit the model's `Message` pattern, so it is sanitised here.
        public mutating func jobFailed(_ reason: String) -> Action {
            guard status == .submitted || status == .inProgress else { return .none }
            status = .failed
            message = Self.sanitised(reason)
            return .finish(.failed, message: message)
        }

        public var isTerminal: Bool { status == .completed || status == .failed }

        /// Keeps letters, digits, `_`, backtick and the ASCII range 0x20–0x3A (`[\w -:`]+`, spec §6), at most 2048.
        static func sanitised(_ text: String) -> String {
            let kept = text.unicodeScalars.map { scalar -> Character in
                let value = scalar.value
                if (0x20...0x3A).contains(value) || value == 0x60 || value == 0x5F { return Character(scalar) }
                if scalar.properties.isAlphabetic || scalar.properties.numericType != nil { return Character(scalar) }
                return " "
            }
            let result = String(kept).prefix(2048)
            return result.isEmpty ? "Import job failed" : String(result)
        }
    }
}
