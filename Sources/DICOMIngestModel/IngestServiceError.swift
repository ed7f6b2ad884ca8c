/// An API-level error, named and numbered as AWS HealthImaging's modeled exceptions (spec §1.1).
public struct IngestServiceError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Hashable, Sendable, CaseIterable {
        case validationException = "ValidationException"
        case accessDeniedException = "AccessDeniedException"
        case resourceNotFoundException = "ResourceNotFoundException"
        case conflictException = "ConflictException"
        case serviceQuotaExceededException = "ServiceQuotaExceededException"
        case throttlingException = "ThrottlingException"
        /// DICOMweb only: no media type the request accepts can be served (PS3.18 §8.7.5).
        case notAcceptableException = "NotAcceptableException"
        case internalServerException = "InternalServerException"

        /// The HTTP status the model gives each exception (402 for quota, sic).
        public var httpStatus: Int {
            switch self {
            case .validationException: return 400
            case .accessDeniedException: return 403
            case .resourceNotFoundException: return 404
            case .conflictException: return 409
            case .serviceQuotaExceededException: return 402
            case .throttlingException: return 429
            case .notAcceptableException: return 406
            case .internalServerException: return 500
            }
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public static func validation(_ message: String) -> IngestServiceError { .init(.validationException, message) }
    public static func notFound(_ message: String) -> IngestServiceError { .init(.resourceNotFoundException, message) }
    public static func conflict(_ message: String) -> IngestServiceError { .init(.conflictException, message) }
    public static func `internal`(_ message: String) -> IngestServiceError { .init(.internalServerException, message) }
}
