public import DICOMIngestModel

extension IngestServiceError {
    /// Maps any layer error to the service error a client sees, in one place; unknown errors become
    /// `InternalServerException` without their internals.
    public init(_ error: any Error) {
        switch error {
        case let error as IngestServiceError:
            self = error
        case let error as ImageSetStoreError:
            switch error.kind {
            case .notFound: self.init(.resourceNotFoundException, error.message)
            case .conflict: self.init(.conflictException, error.message)
            case .quotaExceeded: self.init(.serviceQuotaExceededException, error.message)
            case .invalid: self.init(.validationException, error.message)
            case .io: self.init(.internalServerException, "The data store could not be read or written: \(error.message)")
            }
        case let error as ObjectIOError:
            switch error.kind {
            case .notFound: self.init(.resourceNotFoundException, error.message)
            case .accessDenied: self.init(.accessDeniedException, error.message)
            case .invalidPrefix: self.init(.validationException, error.message)
            case .io: self.init(.internalServerException, error.message)
            }
        default:
            self.init(.internalServerException, "Internal error")
        }
    }
}
