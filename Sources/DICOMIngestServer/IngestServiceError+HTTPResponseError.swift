public import DICOMIngestModel
import HTTPTypes
public import Hummingbird
import NIOCore

/// Renders service errors the way every AWS SDK parses restJson1 errors (spec §1.1): the model's status, the
/// `x-amzn-ErrorType` header and a body `{"__type","message"}`.
extension IngestServiceError: HTTPResponseError {
    public var status: HTTPResponse.Status { .init(code: code.httpStatus) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        JSONResponse.error(self)
    }
}

enum JSONResponse {
    static let errorTypeHeader = HTTPField.Name("x-amzn-ErrorType")!
    static let requestIdHeader = HTTPField.Name("x-amzn-RequestId")!

    static func ok(_ value: JSONValue) -> Response {
        var bytes: [UInt8] = []
        value.write(to: &bytes)
        return Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func error(_ error: IngestServiceError) -> Response {
        var bytes: [UInt8] = []
        JSONValue.object([("__type", .string(error.code.rawValue)), ("message", .string(error.message))]).write(to: &bytes)
        var headers: HTTPFields = [.contentType: "application/json"]
        headers[errorTypeHeader] = error.code.rawValue
        return Response(
            status: .init(code: error.code.httpStatus), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
