import HTTPTypes
import Hummingbird

/// Cross-origin requests from the origins `corsOrigins` names (the Fetch standard's CORS protocol), so that a viewer
/// served from another origin reads DICOMweb with a bearer token or a signing proxy. A preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) is answered here, before authentication: browsers send it without credentials.
/// Every other answer to an allowed origin, errors included, names the origin, so the page can read the status.
struct CORSMiddleware: RouterMiddleware {
    typealias Context = IngestRequestContext
    let origins: [String]

    static let methods = "GET, POST, PUT, DELETE, OPTIONS"
    /// Headers a page may read beyond the CORS-safelisted ones.
    static let exposed = "Content-Type, Content-Length, x-amzn-ErrorType, x-amzn-RequestId"

    func allows(_ origin: String) -> Bool {
        origins.contains("*") || origins.contains(origin)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin], allows(origin) else { return try await next(request, context) }
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            var headers: HTTPFields = [
                .accessControlAllowOrigin: origin, .vary: "Origin", .accessControlAllowMethods: Self.methods,
                .accessControlMaxAge: "600",
            ]
            // The headers asked for, as asked (Authorization among them); only token characters are echoed.
            if let asked = request.headers[.accessControlRequestHeaders],
                asked.utf8.count <= 1024, asked.allSatisfy({ $0.isLetter || $0.isNumber || "-_, ".contains($0) })
            {
                headers[.accessControlAllowHeaders] = asked
            }
            return Response(status: .noContent, headers: headers)
        }
        var response = try await next(request, context)
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.vary] = "Origin"
        response.headers[.accessControlExposeHeaders] = Self.exposed
        return response
    }
}
