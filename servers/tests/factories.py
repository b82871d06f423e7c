import factory

from accounts.tests.factories import UserFactory
from billing.tests.factories import plan
from servers.models import Deployment, Domain, Server


class ServerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Server

    user = factory.SubFactory(UserFactory)
    plan = factory.LazyFunction(plan)
    status = Server.Status.RUNNING
    name = factory.Sequence(lambda n: f"web-{n}")
    region = "nyc3"
    provider_id = factory.Sequence(lambda n: str(100000 + n))
    ip_address = factory.Sequence(lambda n: f"203.0.113.{n % 250 + 1}")
    ssh_password = "s3cret-root-password"


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    server = factory.SubFactory(ServerFactory)
    user = factory.SelfAttribute("server.user")
    git_url = "https://github.com/example/app.git"
    branch = "main"
    status = Deployment.Status.SUCCESS


class DomainFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Domain

    server = factory.SubFactory(ServerFactory)
    user = factory.SelfAttribute("server.user")
    name = factory.Sequence(lambda n: f"site{n}.example.com")
