"""Custom key stores (AWS CloudHSM clusters, external key store proxies): a
ledger has none.

AWS KMS can keep a key's material in a customer's CloudHSM cluster or behind
an external key store (XKS) proxy. keyledger keeps material only under its own
root key, so no custom key store can exist here, and each operation answers
what AWS answers an account that has none:

- DescribeCustomKeyStores lists none; a store asked for by id or name is
  CustomKeyStoreNotFoundException, and a marker (none was ever handed out)
  InvalidMarkerException.
- ConnectCustomKeyStore, DisconnectCustomKeyStore, UpdateCustomKeyStore and
  DeleteCustomKeyStore: CustomKeyStoreNotFoundException.
- CreateCustomKeyStore: the error AWS gives when the cluster or proxy the
  store would use does not exist (CloudHsmClusterNotFoundException, ...):
  behind a ledger there is none.
- CreateKey and GenerateRandom with a CustomKeyStoreId: see `no_such_store`.

Each call is authorized first (IAM policy only: these actions name no key) and
is a record, like every call. The secrets these requests can carry (the
`kmsuser` password, the proxy's credential) are never recorded or echoed: the
refusals name the store's id or name only, and the model check hides
sensitive members' values.
"""

from __future__ import annotations

from collections.abc import Mapping

from keyledger import events as ev
from keyledger import responses as r
from keyledger.errors import (
    CloudHsmClusterNotFoundException,
    CustomKeyStoreNotFoundException,
    InvalidMarkerException,
    XksProxyUriUnreachableException,
    XksProxyVpcEndpointServiceNotFoundException,
)
from keyledger.service.base import ServiceBase
from keyledger.service.request import _missing, _Request


def no_such_store(custom_key_store_id: str) -> CustomKeyStoreNotFoundException:
    """A custom key store id names nothing in a ledger."""
    return CustomKeyStoreNotFoundException(
        f"Custom key store {custom_key_store_id} does not exist in this account and Region.")


class CustomKeyStoreOps(ServiceBase):
    """The six custom key store operations, answered for an account that has none."""

    def describe_custom_key_stores(self, *, custom_key_store_id: str | None = None,
                                   custom_key_store_name: str | None = None, limit: int | None = None,
                                   marker: str | None = None) -> r.DescribeCustomKeyStoresResponse:
        """DescribeCustomKeyStores: the account's custom key stores, which in a
        ledger are none (an empty list, `truncated` false). Needs
        kms:DescribeCustomKeyStores.

        Raises CustomKeyStoreNotFoundException (a given id or name),
        InvalidMarkerException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.DescribeCustomKeyStoresResponse:
            req.authorize("kms:DescribeCustomKeyStores", None)
            if custom_key_store_id is not None:
                raise no_such_store(custom_key_store_id)
            if custom_key_store_name is not None:
                raise CustomKeyStoreNotFoundException(
                    f"Custom key store named {custom_key_store_name} does not exist in this account and Region.")
            if marker is not None:  # no listing here ever handed one out
                raise InvalidMarkerException("The marker is not valid.")
            req.emit([ev.MetadataRead("DescribeCustomKeyStores")])
            return r.DescribeCustomKeyStoresResponse([], False)
        return self._run("DescribeCustomKeyStores", body)

    def _absent(self, operation: str, custom_key_store_id: str) -> None:
        def body(req: _Request) -> None:
            req.authorize(f"kms:{operation}", None)
            raise no_such_store(custom_key_store_id)
        return self._run(operation, body)  # (a server plans the call: `_run` hands back the plan)

    def connect_custom_key_store(self, custom_key_store_id: str) -> None:
        """ConnectCustomKeyStore: no custom key store exists in a ledger. Needs
        kms:ConnectCustomKeyStore.

        Raises CustomKeyStoreNotFoundException, AccessDeniedException, ValidationException."""
        return self._absent("ConnectCustomKeyStore", custom_key_store_id)

    def disconnect_custom_key_store(self, custom_key_store_id: str) -> None:
        """DisconnectCustomKeyStore: no custom key store exists in a ledger.
        Needs kms:DisconnectCustomKeyStore.

        Raises CustomKeyStoreNotFoundException, AccessDeniedException, ValidationException."""
        return self._absent("DisconnectCustomKeyStore", custom_key_store_id)

    def delete_custom_key_store(self, custom_key_store_id: str) -> None:
        """DeleteCustomKeyStore: no custom key store exists in a ledger. Needs
        kms:DeleteCustomKeyStore.

        Raises CustomKeyStoreNotFoundException, AccessDeniedException, ValidationException."""
        return self._absent("DeleteCustomKeyStore", custom_key_store_id)

    def update_custom_key_store(self, custom_key_store_id: str, *, new_custom_key_store_name: str | None = None,
                                key_store_password: str | None = None, cloud_hsm_cluster_id: str | None = None,
                                xks_proxy_uri_endpoint: str | None = None, xks_proxy_uri_path: str | None = None,
                                xks_proxy_vpc_endpoint_service_name: str | None = None,
                                xks_proxy_vpc_endpoint_service_owner: str | None = None,
                                xks_proxy_authentication_credential: Mapping[str, str] | None = None,
                                xks_proxy_connectivity: str | None = None) -> None:
        """UpdateCustomKeyStore: no custom key store exists in a ledger, so
        there is nothing to update (the new settings, secrets among them, are
        neither used nor recorded). Needs kms:UpdateCustomKeyStore.

        Raises CustomKeyStoreNotFoundException, AccessDeniedException, ValidationException."""
        return self._absent("UpdateCustomKeyStore", custom_key_store_id)

    def create_custom_key_store(self, custom_key_store_name: str, *, cloud_hsm_cluster_id: str | None = None,
                                trust_anchor_certificate: str | None = None, key_store_password: str | None = None,
                                custom_key_store_type: str | None = None, xks_proxy_uri_endpoint: str | None = None,
                                xks_proxy_uri_path: str | None = None,
                                xks_proxy_vpc_endpoint_service_name: str | None = None,
                                xks_proxy_vpc_endpoint_service_owner: str | None = None,
                                xks_proxy_authentication_credential: Mapping[str, str] | None = None,
                                xks_proxy_connectivity: str | None = None) -> r.CreateCustomKeyStoreResponse:
        """CreateCustomKeyStore: refused, with the error AWS gives when what
        the store would connect to does not exist, because behind a ledger
        nothing does. An AWS CloudHSM key store (the default type) names a
        cluster: CloudHsmClusterNotFoundException. An external key store
        names a proxy: XksProxyUriUnreachableException for a public endpoint
        (keyledger connects to no proxy), XksProxyVpcEndpointServiceNotFoundException
        for a VPC endpoint service. Needs kms:CreateCustomKeyStore (checked
        first). The password and the proxy credential are neither used nor
        recorded.

        Raises CloudHsmClusterNotFoundException, XksProxyUriUnreachableException,
        XksProxyVpcEndpointServiceNotFoundException, AccessDeniedException, ValidationException."""
        def body(req: _Request) -> r.CreateCustomKeyStoreResponse:
            req.authorize("kms:CreateCustomKeyStore", None)
            if custom_key_store_type != "EXTERNAL_KEY_STORE":  # AWS_CLOUDHSM, the default
                if cloud_hsm_cluster_id is None:
                    raise _missing("cloudHsmClusterId")
                raise CloudHsmClusterNotFoundException(
                    f"CloudHSM cluster {cloud_hsm_cluster_id} was not found: a ledger has no CloudHSM clusters "
                    "(it keeps key material under its own root key).")
            if xks_proxy_connectivity == "VPC_ENDPOINT_SERVICE":
                if xks_proxy_vpc_endpoint_service_name is None:
                    raise _missing("xksProxyVpcEndpointServiceName")
                raise XksProxyVpcEndpointServiceNotFoundException(
                    f"VPC endpoint service {xks_proxy_vpc_endpoint_service_name} was not found: a ledger has "
                    "no VPC endpoint services (it keeps key material under its own root key).")
            raise XksProxyUriUnreachableException(
                "keyledger does not connect to external key store proxies: it keeps key material under its own "
                "root key.")
        return self._run("CreateCustomKeyStore", body)
