"""Checks a running `praxis serve` with clients we did not write (grpcio's health and
reflection packages): every service reports SERVING and each port lists, by reflection, the
services it serves.

    python3 check_install.py DIRECTORY_ADDR IDENTITY_ADDR AUTHZ_ADDR
"""

import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

EXPECTED = {
    0: ["praxis.directory.v1.EnterpriseService", "praxis.directory.v1.PracticeService", "praxis.directory.v1.UserService",
        "praxis.directory.v1.EmailDomainService", "praxis.directory.v1.RoleService",
        "praxis.directory.v1.RoleBindingService", "praxis.directory.v1.PersonService",
        "praxis.directory.v1.AccountService", "praxis.audit.v1.AuditService"],
    1: ["praxis.identity.v1.TokenService", "praxis.identity.v1.AuthService",
        "praxis.identity.v1.SessionService", "praxis.identity.v1.TwoFactorService"],
    2: ["praxis.authz.v1.AuthzService", "praxis.authz.v1.PolicyService"],
}


def wait_serving(channel, service, deadline):
    stub = health_pb2_grpc.HealthStub(channel)
    last = None
    while time.monotonic() < deadline:
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
            last = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                return last
        except grpc.RpcError as error:
            last = error.code().name
        time.sleep(0.2)
    raise SystemExit(f"{service or '(server)'}: not SERVING in time (last: {last})")


def listed(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    for answer in stub.ServerReflectionInfo(iter([request]), timeout=5):
        return [service.name for service in answer.list_services_response.service]
    raise SystemExit("reflection gave no answer")


def main(addresses):
    deadline = time.monotonic() + 60
    for index, address in enumerate(addresses):
        with grpc.insecure_channel(address) as channel:
            for service in EXPECTED[index] + [""]:
                status = wait_serving(channel, service, deadline)
                print(f"{address} {service or '(server)'}: {status}")
            names = listed(channel)
            missing = [name for name in EXPECTED[index] if name not in names]
            if missing:
                raise SystemExit(f"{address}: reflection lists {names}, missing {missing}")
            print(f"{address} reflection: {', '.join(sorted(names))}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
