"""Contains all the data models used in inputs/outputs"""

from .account import Account
from .balance import Balance
from .cancel_request import CancelRequest
from .capture_request import CaptureRequest
from .change_request import ChangeRequest
from .checkout_created import CheckoutCreated
from .checkout_request import CheckoutRequest
from .consume_request import ConsumeRequest
from .consumption import Consumption
from .customer import Customer
from .empty import Empty
from .entitled_feature import EntitledFeature
from .entitlement import Entitlement
from .entitlement_check import EntitlementCheck
from .entitlements import Entitlements
from .entry import Entry
from .error import Error
from .error_detail import ErrorDetail
from .feature_counts import FeatureCounts
from .get_open_api_response_200 import GetOpenApiResponse200
from .history import History
from .hold import Hold
from .hold_request import HoldRequest
from .holds_page import HoldsPage
from .invalid_product import InvalidProduct
from .lot import Lot
from .low_threshold import LowThreshold
from .low_threshold_request import LowThresholdRequest
from .payment import Payment
from .payments_page import PaymentsPage
from .portal_request import PortalRequest
from .portal_session import PortalSession
from .price import Price
from .price_counts import PriceCounts
from .price_per_credit import PricePerCredit
from .product import Product
from .product_counts import ProductCounts
from .product_list import ProductList
from .product_metadata import ProductMetadata
from .promotional_grant import PromotionalGrant
from .promotional_request import PromotionalRequest
from .scheduled_change import ScheduledChange
from .subscription import Subscription
from .subscription_changed import SubscriptionChanged
from .sync_body import SyncBody
from .sync_report import SyncReport
from .top_up import TopUp
from .top_up_purchase import TopUpPurchase
from .top_up_request import TopUpRequest

__all__ = (
    "Account",
    "Balance",
    "CancelRequest",
    "CaptureRequest",
    "ChangeRequest",
    "CheckoutCreated",
    "CheckoutRequest",
    "ConsumeRequest",
    "Consumption",
    "Customer",
    "Empty",
    "EntitledFeature",
    "Entitlement",
    "EntitlementCheck",
    "Entitlements",
    "Entry",
    "Error",
    "ErrorDetail",
    "FeatureCounts",
    "GetOpenApiResponse200",
    "History",
    "Hold",
    "HoldRequest",
    "HoldsPage",
    "InvalidProduct",
    "Lot",
    "LowThreshold",
    "LowThresholdRequest",
    "Payment",
    "PaymentsPage",
    "PortalRequest",
    "PortalSession",
    "Price",
    "PriceCounts",
    "PricePerCredit",
    "Product",
    "ProductCounts",
    "ProductList",
    "ProductMetadata",
    "PromotionalGrant",
    "PromotionalRequest",
    "ScheduledChange",
    "Subscription",
    "SubscriptionChanged",
    "SyncBody",
    "SyncReport",
    "TopUp",
    "TopUpPurchase",
    "TopUpRequest",
)
