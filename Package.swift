// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let grdb: Target.Dependency = .product(name: "GRDB", package: "GRDB.swift")
let asyncHTTPClient: Target.Dependency = .product(name: "AsyncHTTPClient", package: "async-http-client")
let crypto: Target.Dependency = .product(name: "Crypto", package: "swift-crypto")
let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioHTTP1: Target.Dependency = .product(name: "NIOHTTP1", package: "swift-nio")
let hummingbird: Target.Dependency = .product(name: "Hummingbird", package: "hummingbird")
let hummingbirdCore: Target.Dependency = .product(name: "HummingbirdCore", package: "hummingbird")
let hummingbirdTesting: Target.Dependency = .product(name: "HummingbirdTesting", package: "hummingbird")
let httpTypes: Target.Dependency = .product(name: "HTTPTypes", package: "swift-http-types")
let coreMetrics: Target.Dependency = .product(name: "CoreMetrics", package: "swift-metrics")
let prometheus: Target.Dependency = .product(name: "Prometheus", package: "swift-prometheus")
let postgresNIO: Target.Dependency = .product(name: "PostgresNIO", package: "postgres-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")

/// DCMTK is linked by library name: Debian's `dcmtk.pc` requires `sndfile`, so pkg-config cannot be used.
let dcmtkLibraries: [LinkerSetting] = ["dcmjpeg", "dcmjpls", "dcmimage", "dcmimgle", "dcmdata", "oflog", "ofstd"]
    .map { .linkedLibrary($0) }

let package = Package(
    name: "dicom-ingest",
    products: [
        .executable(name: "dicom-ingest", targets: ["DICOMIngestCLI"]),
        .library(name: "DICOMCore", targets: ["DICOMCore"]),
        .library(name: "DICOMParser", targets: ["DICOMParser"]),
        .library(name: "DICOMToolkit", targets: ["DICOMToolkit"]),
        .library(name: "DICOMPixels", targets: ["DICOMPixels"]),
        .library(name: "DICOMIngestModel", targets: ["DICOMIngestModel"]),
        .library(name: "DICOMIngest", targets: ["DICOMIngest"]),
        .library(name: "DICOMIngestSQL", targets: ["DICOMIngestSQL"]),
        .library(name: "DICOMIngestSQLite", targets: ["DICOMIngestSQLite"]),
        .library(name: "DICOMIngestPostgres", targets: ["DICOMIngestPostgres"]),
        .library(name: "DICOMIngestS3", targets: ["DICOMIngestS3"]),
        .library(name: "DICOMIngestServer", targets: ["DICOMIngestServer"]),
        .library(name: "AWSSigV4", targets: ["AWSSigV4"]),
        .library(name: "DICOMIngestTestSupport", targets: ["DICOMIngestTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
    ],
    targets: [
        // MARK: - Layer 0: C modules and pure value types
        .systemLibrary(name: "CZlib"),
        .target(
            name: "CDCMTKShim",
            linkerSettings: dcmtkLibraries
        ),
        .target(
            name: "CCodecs",
            // CharLS is loaded at run time with RTLD_LOCAL (see JPEGLS.cpp), never linked.
            linkerSettings: [.linkedLibrary("openjph"), .linkedLibrary("openjp2"), .linkedLibrary("dl")]
        ),
        .target(name: "DICOMCore", swiftSettings: swiftSettings),

        // MARK: - Layer 1: parsing, the DCMTK face, API shapes
        .target(name: "DICOMParser", dependencies: ["DICOMCore", "CZlib"], swiftSettings: swiftSettings),
        .target(name: "DICOMToolkit", dependencies: ["DICOMCore", "CDCMTKShim"], swiftSettings: swiftSettings),
        .target(name: "DICOMIngestModel", swiftSettings: swiftSettings),
        .target(
            name: "DICOMPixels",
            dependencies: ["DICOMCore", "DICOMToolkit", "CCodecs", "CZlib"],
            swiftSettings: swiftSettings
        ),
        .target(name: "AWSSigV4", dependencies: [crypto], swiftSettings: swiftSettings),

        // MARK: - Layer 2: the engine
        .target(
            name: "DICOMIngest",
            dependencies: [
                "DICOMCore", "DICOMParser", "DICOMToolkit", "DICOMPixels", "DICOMIngestModel", "CZlib", logging,
                coreMetrics, crypto,
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: - Layer 3: adapters
        .target(name: "DICOMIngestSQL", dependencies: ["DICOMIngest", "DICOMIngestModel"], swiftSettings: swiftSettings),
        .target(
            name: "DICOMIngestSQLite",
            dependencies: ["DICOMIngest", "DICOMIngestModel", "DICOMIngestSQL", grdb],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "DICOMIngestPostgres",
            dependencies: ["DICOMIngest", "DICOMIngestModel", "DICOMIngestSQL", postgresNIO, nioCore, nioPosix, logging],
            swiftSettings: swiftSettings
        ),

        .target(
            name: "DICOMIngestS3",
            dependencies: ["DICOMIngest", "DICOMIngestModel", "DICOMParser", "AWSSigV4", asyncHTTPClient, nioCore, nioHTTP1],
            swiftSettings: swiftSettings
        ),

        .target(
            name: "DICOMIngestServer",
            dependencies: [
                "DICOMIngest", "DICOMIngestModel", "DICOMParser", "DICOMPixels", "AWSSigV4", hummingbird, hummingbirdCore,
                httpTypes, nioCore,
                logging, coreMetrics, prometheus, .product(name: "JWTKit", package: "jwt-kit"), asyncHTTPClient,
                nioHTTP1,
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: - Layer 4: the command-line composition root
        .executableTarget(
            name: "DICOMIngestCLI",
            dependencies: [
                "DICOMIngest", "DICOMIngestSQL", "DICOMIngestSQLite", "DICOMIngestPostgres", "DICOMIngestS3",
                "DICOMIngestServer", "DICOMIngestModel", "DICOMCore", "DICOMPixels", argumentParser, logging, prometheus,
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: - Test support and tests
        .target(
            name: "DICOMIngestTestSupport",
            dependencies: ["DICOMCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "DICOMCoreTests", dependencies: ["DICOMCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "DICOMParserTests",
            dependencies: ["DICOMParser", "DICOMCore", "DICOMIngestTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DICOMToolkitTests",
            dependencies: ["DICOMToolkit", "DICOMCore", "DICOMIngestTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DICOMPixelsTests",
            dependencies: ["DICOMPixels", "DICOMIngestTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DICOMIngestTests",
            dependencies: ["DICOMIngest", "DICOMParser", "DICOMCore", "DICOMIngestModel", "DICOMIngestTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DICOMIngestSQLiteTests",
            dependencies: [
                "DICOMIngestSQLite", "DICOMIngestSQL", "DICOMIngestPostgres", "DICOMIngest", "DICOMIngestModel", "DICOMPixels",
                "DICOMParser", "DICOMIngestTestSupport", grdb,
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DICOMIngestS3Tests",
            dependencies: [
                "DICOMIngestS3", "AWSSigV4", "DICOMIngest", "DICOMIngestModel", "DICOMIngestSQL", "DICOMIngestSQLite",
                "DICOMIngestPostgres", "DICOMParser",
                "DICOMPixels", "DICOMIngestTestSupport",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DICOMIngestServerTests",
            dependencies: [
                "DICOMIngestServer", "DICOMIngest", "DICOMIngestModel", "DICOMIngestSQL", "DICOMIngestSQLite", "DICOMPixels", "AWSSigV4",
                "DICOMIngestTestSupport", hummingbirdTesting, httpTypes, nioCore, prometheus,
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ParserDifferentialTests",
            dependencies: ["DICOMIngest", "DICOMParser", "DICOMToolkit", "DICOMCore", "DICOMIngestTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DICOMIngestCLITests",
            dependencies: ["DICOMIngestTestSupport", "AWSSigV4"],
            swiftSettings: swiftSettings
        ),
    ],
    cxxLanguageStandard: .cxx17
)

/// The libFuzzer executable: built only by `scripts/fuzz.sh`, which sets DICOM_INGEST_FUZZ and builds with
/// `-sanitize=fuzzer,address -enable-testing` (the targets reach internal parsers through `@testable import`).
if Context.environment["DICOM_INGEST_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(
            name: "FuzzTargets",
            dependencies: [
                "DICOMParser", "DICOMIngest", "DICOMIngestModel", "DICOMIngestS3", "DICOMIngestServer", "AWSSigV4",
                "DICOMIngestSQL", "DICOMIngestSQLite",
            ],
            path: "Fuzz/FuzzTargets", swiftSettings: swiftSettings + [.unsafeFlags(["-parse-as-library"])]))
    package.products.append(.executable(name: "fuzz-dicom-ingest", targets: ["FuzzTargets"]))
}
