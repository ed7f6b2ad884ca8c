/// ARNs of data stores and image sets, in the shape the `Arn` pattern of the spec's validation table accepts:
/// `arn:aws:medical-imaging:<region>:<account>:datastore/<id>[/imageset/<id>]`. The defaults are placeholders
/// for a self-hosted store; the server takes its own from its configuration.
public struct ResourceARN: Sendable, Hashable {
    public var region: String
    public var accountId: String

    public init(region: String = "us-east-1", accountId: String = "000000000000") {
        self.region = region
        self.accountId = accountId
    }

    public func datastore(_ datastoreId: String) -> String {
        "arn:aws:medical-imaging:\(region):\(accountId):datastore/\(datastoreId)"
    }

    public func imageSet(_ datastoreId: String, _ imageSetId: String) -> String {
        datastore(datastoreId) + "/imageset/" + imageSetId
    }
}
