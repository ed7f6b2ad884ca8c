import ArgumentParser
import DICOMPixels

/// `dicom-ingest codec-helper`: the codec helper process the engine starts itself (`CodecHelperPool`); it serves
/// decode requests on its standard input and output until the engine closes them. Not for people.
struct CodecHelper: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec-helper", abstract: "Serve the engine's codec decode requests (started by the engine).",
        shouldDisplay: false)

    func run() throws {
        CodecHelperServer.run()
    }
}
