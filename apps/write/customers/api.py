from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated

from apps.cqrs.api import CommandResultSerializer, CommandView
from apps.write.customers import services


class SignUpInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"})
    full_name = serializers.CharField(max_length=200)
    shipping_address = serializers.CharField(
        max_length=1000, required=False, default="", allow_blank=True
    )


class CustomerResultSerializer(CommandResultSerializer):
    customer_id = serializers.IntegerField()


class SignUpView(CommandView):
    """Create a customer account."""

    permission_classes = [AllowAny]
    throttle_scope = "sign-up"
    serializer_class = SignUpInputSerializer
    result_serializer_class = CustomerResultSerializer

    def execute(self, data):
        customer = services.customer_sign_up(actor=None, **data)
        return {"customer_id": customer.pk}


class ProfileInputSerializer(serializers.Serializer):
    full_name = serializers.CharField(max_length=200)
    shipping_address = serializers.CharField(max_length=1000, allow_blank=True)


class UpdateProfileView(CommandView):
    """Change your name and shipping address."""

    permission_classes = [IsAuthenticated]
    throttle_scope = "customer-commands"
    serializer_class = ProfileInputSerializer
    result_serializer_class = CustomerResultSerializer
    success_status = 200

    def execute(self, data):
        customer = services.customer_update_profile(actor=self.actor, **data)
        return {"customer_id": customer.pk}


commands = [
    ("sign-up/", SignUpView, "sign-up"),
    ("update-profile/", UpdateProfileView, "update-profile"),
]
