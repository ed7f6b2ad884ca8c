import AWSSigV4
import DICOMIngestTestSupport
import Foundation
import Glibc
import Testing

/// What an unauthenticated or slow client can hold on a real `dicom-ingest serve`: connections are closed when
/// idle, a body that does not arrive is given up, and past the connection limit the server stops accepting.
@Suite struct ServeTransportTests {
    /// A plain TCP connection to the server, to hold it open or send a request by hand.
    final class RawConnection {
        let descriptor: Int32

        init(port: UInt16) throws {
            descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(connected == 0, "connect: \(String(cString: strerror(errno)))")
        }

        deinit { close() }

        func close() { _ = Glibc.close(descriptor) }

        func send(_ bytes: [UInt8]) {
            _ = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        /// What arrives within `seconds`, and whether the server closed the connection.
        func receive(within seconds: Double) -> (text: String, closed: Bool) {
            var received: [UInt8] = []
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 50) > 0 else { continue }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let got = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
                if got <= 0 { return (String(decoding: received, as: UTF8.self), true) }
                received += chunk[0..<got]
                if String(decoding: received, as: UTF8.self).contains("\r\n\r\n") { break }
            }
            return (String(decoding: received, as: UTF8.self), false)
        }
    }

    static func server(_ configuration: String, in folder: TemporaryFolder) throws -> (RunningServer, UInt16) {
        let server = try RunningServer(store: folder.sub("store"), environment: ServeCommandTests.identity, configuration: configuration)
        let port = try #require(server.url.split(separator: ":").last.flatMap { UInt16($0) })
        return (server, port)
    }

    @Test func idleConnectionsAreClosed() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("serve-idle")
        defer { folder.remove() }
        let (server, port) = try Self.server(#"{"idleTimeout": 1}"#, in: folder)
        defer { server.stop() }
        let idle = try RawConnection(port: port)
        let answer = idle.receive(within: 10)
        #expect(answer.closed)
        #expect(answer.text.isEmpty)
    }

    @Test func pastTheConnectionLimitTheServerWaitsForOneToClose() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("serve-limit")
        defer { folder.remove() }
        let (server, port) = try Self.server(#"{"maxConnections": 2, "idleTimeout": 30}"#, in: folder)
        defer { server.stop() }
        let first = try RawConnection(port: port)
        let second = try RawConnection(port: port)
        Thread.sleep(forTimeInterval: 0.5)
        let third = try RawConnection(port: port)
        third.send(Array("GET /datastore HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        #expect(third.receive(within: 1.5).text.isEmpty, "served past the limit")
        first.close()
        let answer = third.receive(within: 10)
        #expect(answer.text.hasPrefix("HTTP/1.1 403"), "\(answer.text)")
        second.close()
    }

    /// A signed request whose body stops arriving gets a ValidationException once `bodyReadTimeout` has passed.
    @Test func aBodyThatDoesNotArriveIsGivenUp() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("serve-body")
        defer { folder.remove() }
        let (server, port) = try Self.server(#"{"bodyReadTimeout": 1}"#, in: folder)
        defer { server.stop() }
        let body = Array(#"{"datastoreName": "never-sent-whole"}"#.utf8)
        let host = "127.0.0.1:\(port)"
        let signer = SigV4Signer(
            credentials: AWSCredentials(
                accessKeyId: ServeCommandTests.identity["AWS_ACCESS_KEY_ID"]!,
                secretAccessKey: ServeCommandTests.identity["AWS_SECRET_ACCESS_KEY"]!),
            region: "us-east-1", service: "medical-imaging")
        let signed = signer.sign(
            .init(method: "POST", encodedPath: "/datastore", query: [], headers: [("host", host)], payloadHash: SigV4Signer.hexSHA256(body)),
            date: Date())
        var head = "POST /datastore HTTP/1.1\r\nHost: \(host)\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in signed { head += "\(name): \(value)\r\n" }
        let connection = try RawConnection(port: port)
        connection.send(Array((head + "\r\n").utf8) + body.prefix(10))
        let answer = connection.receive(within: 10)
        #expect(answer.text.hasPrefix("HTTP/1.1 400"), "\(answer.text)")
        #expect(answer.text.contains("ValidationException"), "\(answer.text)")
    }
}
