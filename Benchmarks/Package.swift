// swift-tools-version:6.1
import PackageDescription

/// Micro benchmarks (ordo-one/benchmark): `cd Benchmarks && swift package benchmark`.
/// A separate package so the root build and tests never compile benchmark code.
let package = Package(
    name: "dicom-ingest-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "dicom-ingest", path: "../"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "DICOMCore", package: "dicom-ingest"),
                .product(name: "DICOMParser", package: "dicom-ingest"),
                .product(name: "DICOMIngest", package: "dicom-ingest"),
                .product(name: "DICOMIngestSQL", package: "dicom-ingest"),
                .product(name: "DICOMIngestSQLite", package: "dicom-ingest"),
                .product(name: "DICOMIngestTestSupport", package: "dicom-ingest"),
            ],
            path: "Benchmarks/EngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The catalog at archive scale: commit rate, search and metadata latency, bytes per instance (compare.sh).
        .executableTarget(
            name: "CatalogScale",
            dependencies: [
                .product(name: "DICOMIngest", package: "dicom-ingest"),
                .product(name: "DICOMIngestModel", package: "dicom-ingest"),
                .product(name: "DICOMIngestSQL", package: "dicom-ingest"),
                .product(name: "DICOMIngestSQLite", package: "dicom-ingest"),
                .product(name: "DICOMIngestPostgres", package: "dicom-ingest"),
            ],
            path: "Benchmarks/CatalogScale"
        ),
        // The pixel stage's codec work alone, on the frames of a generated archive (run by compare.sh).
        .executableTarget(
            name: "PixelCodecRate",
            dependencies: [.product(name: "DICOMPixels", package: "dicom-ingest")],
            path: "Benchmarks/PixelCodecRate"
        ),
    ]
)
